"""A batch's receipts to one agency go as one message (``lienthong.receipts/1``).

For 2 KiB documents the broker's work per submission is its copy and its receipt: publishing
each receipt on its own cost the broker as much as the copy (the bench's ``ceiling+receipt``
reached 0.54 of the bare forwarder). A batch of 250 documents from 20 agencies now sends about
20 receipt messages, not 250. A lone receipt still goes as ``lienthong.receipt/1``, an urgent
message is never held in a group, and a group is cut at :data:`GROUP_MAX_BYTES` of receipt
bodies (a fan-out receipt lists every recipient).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from relay.domain.outgoing import receipts_together
from relay.worker.process import Publish
from schemas import topology as t

#: At most this many bytes of receipt bodies in one grouped message.
GROUP_MAX_BYTES: Final = 1024 * 1024


def _groupable(pub: Publish) -> bool:
    out = pub.outgoing
    return out.message_type == t.TYPE_RECEIPT and pub.delivery_id is None and not out.urgent


def group_receipts(items: Iterable[tuple[Publish, int]]) -> list[tuple[Publish, int]]:
    """``items`` (a publish and the bytes it counts towards the bound on copies in flight) with
    the receipts to each agency replaced by grouped messages, which count what their receipts
    counted. Everything else keeps its order; the receipts follow it, agency by agency in the
    order of each agency's first receipt (a lone one as it was)."""
    kept: list[tuple[Publish, int]] = []
    groups: dict[str, list[list[tuple[Publish, int]]]] = {}
    sizes: dict[str, int] = {}
    for pub, counted in items:
        if not _groupable(pub):
            kept.append((pub, counted))
            continue
        owner, size = pub.outgoing.route_to, len(pub.outgoing.body)
        runs = groups.setdefault(owner, [[]])
        if runs[-1] and sizes[owner] + size > GROUP_MAX_BYTES:
            runs.append([])
            sizes[owner] = 0
        runs[-1].append((pub, counted))
        sizes[owner] = sizes.get(owner, 0) + size
    for owner, runs in groups.items():
        for run in runs:
            if len(run) == 1:
                kept.append(run[0])
            else:
                grouped = receipts_together(owner, [pub.outgoing for pub, _ in run])
                kept.append((Publish(grouped), sum(counted for _, counted in run)))
    return kept
