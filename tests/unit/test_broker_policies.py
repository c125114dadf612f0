"""Every quorum queue of the hub is under an explicit delivery limit with an at-least-once
dead-letter target, so RabbitMQ (4.x drops after 20 deliveries by default) deletes nothing."""

from __future__ import annotations

import re

import pytest

from relay.broker.definitions import default_settings, definitions
from schemas import topology as t

DOC = definitions(default_settings())
POLICIES = {p["name"]: p for p in DOC["policies"]}
QUEUE_TYPES = {q["name"]: q["arguments"]["x-queue-type"] for q in DOC["queues"]}
EXCHANGE_TARGETS = {b["source"]: b["destination"] for b in DOC["bindings"]}


def policy_of(queue: str) -> dict[str, object] | None:
    matching = [p for p in POLICIES.values() if re.search(str(p["pattern"]), queue)]
    assert len(matching) <= 1, f"{queue} matches several policies: {matching}"
    return matching[0]["definition"] if matching else None


@pytest.mark.parametrize(
    "queue",
    [
        t.outbox_queue("000.00.00.G22"),
        t.inbox_queue("000.00.00.G22"),
        t.outbox_queue("000.00.00.G22", urgent=True),
        t.inbox_queue("000.00.00.G22", urgent=True),
        t.RETURNED_QUEUE,
        t.FAILED_SUBMISSIONS_QUEUE,
    ],
)
def test_every_quorum_queue_has_a_delivery_limit_and_an_at_least_once_dead_letter_target(
    queue: str,
) -> None:
    definition = policy_of(queue)
    assert definition is not None, f"no policy applies to {queue}"
    assert isinstance(definition.get("delivery-limit"), int), definition
    target = definition.get("dead-letter-exchange")
    assert target, f"{queue}: no dead-letter-exchange: {definition}"
    assert definition.get("dead-letter-strategy") == "at-least-once", definition
    # at-least-once dead-lettering falls back to at-most-once without reject-publish
    assert definition.get("overflow") == "reject-publish", definition
    assert target in EXCHANGE_TARGETS, f"{queue}: dead-letter exchange {target} is not declared"
    assert EXCHANGE_TARGETS[target] != queue, f"{queue} dead-letters into itself (a cycle)"


def test_outboxes_dead_letter_to_the_queue_the_relay_reads_and_that_one_to_the_parking_queue() -> (
    None
):
    for urgent in (False, True):
        outbox = policy_of(t.outbox_queue("000.00.00.G22", urgent=urgent))
        assert outbox is not None
        assert EXCHANGE_TARGETS[str(outbox["dead-letter-exchange"])] == t.FAILED_SUBMISSIONS_QUEUE
    for queue in (t.RETURNED_QUEUE, t.FAILED_SUBMISSIONS_QUEUE):
        definition = policy_of(queue)
        assert definition is not None
        assert EXCHANGE_TARGETS[str(definition["dead-letter-exchange"])] == t.PARKED_QUEUE


def test_the_end_of_the_line_is_a_classic_queue_which_counts_no_deliveries() -> None:
    assert QUEUE_TYPES[t.PARKED_QUEUE] == "classic"
    assert policy_of(t.PARKED_QUEUE) is None
