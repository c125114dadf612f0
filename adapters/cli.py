"""``lienthong adapter run | send``."""

from __future__ import annotations

import click


@click.group()
def adapter() -> None:
    """The agency daemon next to a DMS."""
