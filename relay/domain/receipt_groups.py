"""Which receipts to one agency go together as one ``lienthong.receipts/1`` message.

Shared by the worker (a batch's receipts, :mod:`relay.worker.receipt_groups`) and by what the
relay sends outside its batches: the retry schedule's owed receipts
(:func:`relay.retry.schedule.send_receipts`) and the deadlines job's ``overdue`` notices
(:mod:`relay.periodic`). Only a plain receipt that is not urgent is grouped; a lone one still
goes as ``lienthong.receipt/1``, and a group is cut at :data:`GROUP_MAX_BYTES` of receipt bodies
(a fan-out receipt lists every recipient).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from relay.domain.outgoing import Outgoing, receipts_together
from schemas import topology as t

#: At most this many bytes of receipt bodies in one grouped message.
GROUP_MAX_BYTES: Final = 1024 * 1024

T = TypeVar("T")


def groupable(out: Outgoing) -> bool:
    """A plain receipt that is not urgent (an urgent message is never held in a group)."""
    return out.message_type == t.TYPE_RECEIPT and not out.urgent


def runs_by_agency(items: Iterable[T], outgoing: Callable[[T], Outgoing]) -> list[list[T]]:
    """``items`` (each a receipt, ``outgoing`` says which) in runs to one agency each: agency by
    agency in the order of each agency's first item, each agency's items in their order, a run
    cut before its bodies pass :data:`GROUP_MAX_BYTES` (a larger body is a run of its own)."""
    runs: dict[str, list[list[T]]] = {}
    sizes: dict[str, int] = {}
    for item in items:
        out = outgoing(item)
        owner, size = out.route_to, len(out.body)
        mine = runs.setdefault(owner, [[]])
        if mine[-1] and sizes[owner] + size > GROUP_MAX_BYTES:
            mine.append([])
            sizes[owner] = 0
        mine[-1].append(item)
        sizes[owner] = sizes.get(owner, 0) + size
    return [run for mine in runs.values() for run in mine]


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish and the receipts it carries (itself, when it goes alone)."""

    outgoing: Outgoing
    receipts: list[Outgoing]

    @property
    def grouped(self) -> bool:
        return self.outgoing.message_type == t.TYPE_RECEIPTS


def messages(outs: Sequence[Outgoing]) -> list[Message]:
    """``outs`` as the messages that carry them: what is not :func:`groupable` alone and first,
    in its order; then the receipts to each agency as one ``lienthong.receipts/1`` message per
    run (:func:`runs_by_agency`), a lone receipt as it was."""
    found = [Message(out, [out]) for out in outs if not groupable(out)]
    for run in runs_by_agency((out for out in outs if groupable(out)), lambda out: out):
        if len(run) == 1:
            found.append(Message(run[0], run))
        else:
            found.append(Message(receipts_together(run[0].route_to, run), run))
    return found
