"""Routing rules (DESIGN §1-§2): who may send, and which inbox receives for a recipient.

Pure functions over a snapshot of the directory: the worker loads the entries a batch needs
(the codes it mentions and their hosts) and asks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from schemas import RecipientOutcome, RecipientResult

ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"

#: The routing outcome of a code sent on to the hub above (the reason of its result starts so).
UPSTREAM: Final = "upstream"

#: Host chains longer than this are treated as a directory error (and cycles never loop).
MAX_HOST_DEPTH: Final = 4


@dataclass(frozen=True)
class Entry:
    """One row of the agency directory."""

    code: str
    host: str | None
    state: str

    @property
    def connected(self) -> bool:
        """Runs its own adapter (owns an inbox and an outbox)."""
        return self.host is None


Directory = Mapping[str, Entry]


def resolve_recipient(
    code: str, directory: Directory, *, upstream: str | None = None
) -> RecipientResult:
    """Which connected agency's inbox receives for ``code``, or why none does.

    ``upstream``: the agency code of this hub's federation link to the hub above it
    (:mod:`relay.federation`), given only for what an agency of this hub submitted: a code the
    directory does not serve goes there (the *upstream* outcome: queued to the link, with a
    reason saying so). What came in through a link is never given one, so a code unknown on
    both hubs is refused, never bounced between them.
    """
    entry = directory.get(code)
    if entry is None:
        if upstream is not None:
            return RecipientResult(
                code=code,
                outcome=RecipientOutcome.QUEUED,
                route_to=upstream,
                reason=f"{UPSTREAM}: {code} is not in this hub's directory; sent on to the "
                f"hub above through its federation link ({upstream})",
            )
        return RecipientResult(
            code=code,
            outcome=RecipientOutcome.UNKNOWN,
            reason=f"{code} không có trong danh bạ (agency {code} is not in the directory)",
        )
    seen: set[str] = set()
    current = entry
    for _ in range(MAX_HOST_DEPTH + 1):
        if current.state != ACTIVE:
            what = code if current.code == code else f"{current.code}, which receives for {code},"
            return RecipientResult(
                code=code,
                outcome=RecipientOutcome.SUSPENDED,
                reason=f"{what} is suspended",
            )
        if current.host is None:
            return RecipientResult(
                code=code, outcome=RecipientOutcome.QUEUED, route_to=current.code
            )
        seen.add(current.code)
        host = directory.get(current.host)
        if host is None or host.code in seen:
            break
        current = host
    return RecipientResult(
        code=code,
        outcome=RecipientOutcome.NOT_ROUTABLE,
        reason=f"no connected agency receives for {code} (check its host in the directory)",
    )


def sender_refusal(
    owner: str, sender: str, directory: Directory, *, links: Collection[str] = ()
) -> str | None:
    """Why connected agency ``owner`` may not send as ``sender``, or None if it may.

    An adapter sends for its own agency and for the units it hosts. A federation link (its
    agency code in ``links``) brings in what another hub's agencies send: only codes outside
    this hub's own directory.
    """
    if owner in links:
        if sender in directory:
            return (
                f"sender.organ_id: {sender!r} is an agency of this hub; federation link {owner} "
                "may bring in only codes outside this hub's directory"
            )
        return None
    if sender == owner:
        entry = directory.get(owner)
        if entry is not None and entry.state != ACTIVE:
            return f"sender.organ_id: agency {owner!r} is suspended"
        return None
    entry = directory.get(sender)
    if entry is None:
        return (
            f"sender.organ_id: {sender!r} is not in the directory; agency {owner} may send only "
            "as itself or a unit it hosts"
        )
    if entry.host != owner:
        return (
            f"sender.organ_id: {sender!r} is neither {owner} nor a unit hosted by {owner} "
            f"(its host is {entry.host or 'none'})"
        )
    if entry.state != ACTIVE:
        return f"sender.organ_id: unit {sender!r} is suspended"
    return None
