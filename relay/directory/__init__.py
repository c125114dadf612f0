"""The agency directory: who is connected, who is hosted by whom, who is suspended.

The relay reads the ``agencies`` table (see :mod:`relay.directory.repository`); the commands in
:mod:`relay.cli.agency` change it through :mod:`relay.directory.service` and
:mod:`relay.directory.bulk`, which also provision the broker objects of connected agencies.
"""

from __future__ import annotations

from relay.directory.model import ACTIVE, SUSPENDED, Agency, AgencyState

__all__ = ["ACTIVE", "SUSPENDED", "Agency", "AgencyState"]
