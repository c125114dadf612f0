"""One ``multiple`` ack per run of settled outbox messages (relay/worker/acks.py)."""

from __future__ import annotations

from relay.worker.acks import OutboxAcks


def acks_for(tags: range) -> OutboxAcks:
    acks = OutboxAcks()
    for tag in tags:
        acks.delivered(tag)
    return acks


def test_messages_settled_in_order_are_acked_with_the_last_tag() -> None:
    acks = acks_for(range(1, 6))
    for tag in range(1, 6):
        acks.settle(tag, True)
    assert acks.ack_multiple() == 5
    assert acks.ack_multiple() is None  # nothing left
    assert acks.waiting == 0


def test_nothing_is_acked_while_an_earlier_message_is_unsettled() -> None:
    acks = acks_for(range(1, 6))
    for tag in (2, 3, 5):
        acks.settle(tag, True)
    assert acks.ack_multiple() is None  # 1 is still being handled
    assert acks.waiting == 3
    acks.settle(1, True)
    assert acks.ack_multiple() == 3  # 4 still holds 5 back
    acks.settle(4, True)
    assert acks.ack_multiple() == 5


def test_the_multiple_ack_names_the_last_acked_tag_not_a_nacked_one() -> None:
    acks = acks_for(range(1, 5))
    acks.settle(1, True)
    acks.settle(2, True)
    acks.settle(3, False)  # nacked by the caller: not the broker's to ack any more
    acks.settle(4, False)
    assert acks.ack_multiple() == 2
    assert acks.waiting == 0


def test_a_run_of_nacked_tags_alone_gives_no_ack() -> None:
    acks = acks_for(range(1, 3))
    acks.settle(1, False)
    acks.settle(2, False)
    assert acks.ack_multiple() is None
    assert acks.waiting == 0


def test_draining_for_a_stop_acks_settled_messages_one_by_one_and_skips_nacked_ones() -> None:
    acks = acks_for(range(1, 6))
    acks.settle(2, True)
    acks.settle(3, False)
    acks.settle(5, True)
    assert acks.drain() == [2, 5]
    assert acks.drain() == []
    assert acks.waiting == 0
