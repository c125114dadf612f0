"""Which outboxes one relay worker consumes when several share the work (``LIENTHONG_WORKERS``).

Each connected agency's outbox belongs to exactly one worker, chosen by a stable hash of its
code, so one agency's submissions are still handled in order by one worker while different
agencies are handled in parallel. The assignment depends only on the code and the number of
workers: adding or suspending an agency never moves another agency's outbox.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Partition:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"no worker {self.index} of {self.count}")

    def owns(self, agency: str) -> bool:
        """Whether this worker consumes ``agency``'s outbox."""
        return self.count == 1 or zlib.crc32(agency.encode("utf-8")) % self.count == self.index

    @property
    def leader(self) -> bool:
        """The first worker also runs what must run once: the retry worker and the sweep."""
        return self.index == 0

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
