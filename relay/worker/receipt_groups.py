"""A batch's receipts to one agency go as one message (``lienthong.receipts/1``).

For 2 KiB documents the broker's work per submission is its copy and its receipt: publishing
each receipt on its own cost the broker as much as the copy (the bench's ``ceiling+receipt``
reached 0.54 of the bare forwarder). A batch of 250 documents from 20 agencies now sends about
20 receipt messages, not 250. A lone receipt still goes as ``lienthong.receipt/1``, an urgent
message is never held in a group, and a group is cut at 1 MiB of receipt bodies (a fan-out
receipt lists every recipient). Which receipts go together is decided in
:mod:`relay.domain.receipt_groups`, shared with the receipts the relay sends outside its batches.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.domain.outgoing import receipts_together
from relay.domain.receipt_groups import groupable, runs_by_agency
from relay.worker.process import Publish


def _groupable(pub: Publish) -> bool:
    return pub.delivery_id is None and groupable(pub.outgoing)


def group_receipts(items: Iterable[tuple[Publish, int]]) -> list[tuple[Publish, int]]:
    """``items`` (a publish and the bytes it counts towards the bound on copies in flight) with
    the receipts to each agency replaced by grouped messages, which count what their receipts
    counted. Everything else keeps its order; the receipts follow it, agency by agency in the
    order of each agency's first receipt (a lone one as it was). Which receipts go together is
    :func:`relay.domain.receipt_groups.runs_by_agency`."""
    kept: list[tuple[Publish, int]] = []
    receipts: list[tuple[Publish, int]] = []
    for item in items:
        (receipts if _groupable(item[0]) else kept).append(item)
    for run in runs_by_agency(receipts, lambda item: item[0].outgoing):
        if len(run) == 1:
            kept.append(run[0])
        else:
            grouped = receipts_together(run[0][0].outgoing.route_to, [p.outgoing for p, _ in run])
            kept.append((Publish(grouped), sum(counted for _, counted in run)))
    return kept
