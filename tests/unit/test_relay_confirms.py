"""The relay's confirm bookkeeping and the one decision about outbox messages (no services)."""

from __future__ import annotations

from relay.domain.outgoing import Outgoing
from relay.worker.confirms import (
    NACKED_REASON,
    Confirms,
    InFlight,
    Outcome,
    Verdict,
    outcome,
    verdict,
)
from relay.worker.process import Handled, Publish


def _pub(delivery_id: int | None, mid: str = "m") -> Publish:
    out = Outgoing(route_to="000.00.00.H29", message_id=mid, message_type="document", body=b"{}")
    return Publish(outgoing=out, delivery_id=delivery_id)


def test_a_multiple_ack_settles_every_publish_up_to_its_tag_in_order() -> None:
    c: Confirms[str] = Confirms()
    for name in "abcde":
        c.published(name)
    assert c.confirmed(3, multiple=True) == ["a", "b", "c"]
    assert len(c) == 2
    assert c.confirmed(5, multiple=True) == ["d", "e"]
    assert len(c) == 0


def test_single_confirms_out_of_order_then_a_multiple_one_settle_each_publish_once() -> None:
    c: Confirms[int] = Confirms()
    for n in range(1, 7):
        assert c.published(n * 10) == n
    assert c.confirmed(2, multiple=False) == [20]
    assert c.confirmed(1, multiple=False) == [10]
    assert c.confirmed(2, multiple=False) == []  # a tag is settled once
    assert c.confirmed(5, multiple=True) == [30, 40, 50]
    assert c.confirmed(6, multiple=False) == [60]
    assert len(c) == 0


def test_a_return_before_the_ack_makes_the_publish_unroutable() -> None:
    assert outcome(True, None) is Outcome.CONFIRMED
    assert outcome(False, None) is Outcome.NACKED
    assert outcome(True, "312 NO_ROUTE") is Outcome.UNROUTABLE


def test_a_batch_is_complete_when_its_last_publish_is_settled_whatever_became_of_each() -> None:
    flight = InFlight(handled=[Handled(inbound=None)], outstanding=5)
    copy_ok, copy_nacked, copy_returned = _pub(1), _pub(2), _pub(3)
    receipt_returned, receipt_nacked = _pub(None, "r1"), _pub(None, "r2")
    assert not flight.settle(copy_ok, Outcome.CONFIRMED)
    assert not flight.settle(copy_nacked, Outcome.NACKED)
    assert not flight.settle(copy_returned, Outcome.UNROUTABLE, "returned: 312 NO_ROUTE")
    assert not flight.settle(receipt_returned, Outcome.UNROUTABLE, "returned: 312 NO_ROUTE")
    assert flight.settle(receipt_nacked, Outcome.NACKED)
    assert flight.confirmed == [1]  # queued
    assert flight.failures == {2: NACKED_REASON, 3: "returned: 312 NO_ROUTE"}
    assert flight.unroutable == {3}  # to the retry schedule; the nacked copy waits for the sweep
    assert [(o.message_id, why) for o, why in flight.bounced] == [
        ("r1", "returned: 312 NO_ROUTE"),
        ("r2", NACKED_REASON),
    ]


def test_an_outbox_message_is_acked_once_recorded_and_held_when_the_connection_goes() -> None:
    assert verdict(recorded=True, closing=False) is Verdict.ACK
    assert verdict(recorded=True, closing=True) is Verdict.HOLD
    assert verdict(recorded=False, closing=False) is Verdict.HOLD
