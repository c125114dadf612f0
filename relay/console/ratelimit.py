"""Login attempts, limited per user name and per client address (a sliding window, in memory)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: Failed attempts allowed for one user name, and from one client address, per window.
PER_NAME: Final = 5
PER_CLIENT: Final = 20
WINDOW_SECONDS: Final = 300.0


@dataclass
class LoginLimiter:
    """Counts failed logins; :meth:`retry_after` says how long a new attempt must wait."""

    per_name: int = PER_NAME
    per_client: int = PER_CLIENT
    window: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, name: str, client: str) -> list[tuple[str, int]]:
        return [(f"name:{name.lower()}", self.per_name), (f"client:{client}", self.per_client)]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, name: str, client: str) -> float:
        """0 when an attempt may be made now, else the seconds to wait."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(name, client):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + self.window - now)
        return wait

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _ in self._keys(name, client):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory against a spray of names
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, name: str) -> None:
        """A correct password clears that name's failures (not the client's)."""
        with self._lock:
            self._failures.pop(f"name:{name.lower()}", None)
