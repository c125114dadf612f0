"""``lienthong trace | failures | resend``: what operators use to follow and repair deliveries."""

from __future__ import annotations

import click


@click.command()
@click.argument("document_id")
def trace(document_id: str) -> None:
    """The whole timeline of a document, per recipient."""
    raise click.ClickException("trace is not implemented yet")


@click.command()
def failures() -> None:
    """Deliveries that failed or are retrying."""
    raise click.ClickException("failures is not implemented yet")


@click.command()
@click.argument("document_id")
def resend(document_id: str) -> None:
    """Re-drive the failed deliveries of a document."""
    raise click.ClickException("resend is not implemented yet")
