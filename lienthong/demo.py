"""``lienthong demo``: the end-to-end scenario of the README."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Run the end-to-end exchange scenario."""
    raise click.ClickException("demo is not implemented yet")
