"""What the directory holds about one agency."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

AgencyState = Literal["active", "suspended"]
ACTIVE: AgencyState = "active"
SUSPENDED: AgencyState = "suspended"


@dataclass(frozen=True)
class Agency:
    """One row of the directory.

    A *connected* agency (``host is None``) runs its own adapter and owns a RabbitMQ user,
    an inbox and an outbox; a *hosted unit* sends and receives through its ``host``.
    """

    code: str
    name: str
    host: str | None
    state: str
    strict_code: bool
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def connected(self) -> bool:
        return self.host is None

    @property
    def suspended(self) -> bool:
        return self.state == SUSPENDED

    @property
    def route_to(self) -> str:
        """The connected agency whose inbox receives for this code."""
        return self.host or self.code

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "host": self.host,
            "kind": "connected" if self.connected else "hosted",
            "state": self.state,
            "strict_code": self.strict_code,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }
