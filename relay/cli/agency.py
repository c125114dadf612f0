"""``lienthong agency …``: the agency directory and broker provisioning."""

from __future__ import annotations

import click


@click.group()
def agency() -> None:
    """The agency directory: add, import, list, show, suspend, resume."""
