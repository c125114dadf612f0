"""What the failed-submissions worker reads of a dead-lettered submission's headers
(relay/retry/deadletters.py): text PostgreSQL can hold, whatever the headers carried."""

from __future__ import annotations

from relay.retry.deadletters import death


def test_the_death_headers_are_read_as_safe_text() -> None:
    outbox, reason, count = death(
        {
            "x-first-death-queue": b"agency.000.00.00.G22.outbox\xff",
            "x-first-death-reason": "delivery\x00limit",
            "x-delivery-count": 21,
        }
    )
    assert (outbox, reason, count) == (
        "agency.000.00.00.G22.outbox\\xff",
        "delivery\\x00limit",
        21,
    )


def test_death_headers_of_another_type_or_missing_are_read_as_words() -> None:
    assert death({"x-first-death-queue": 42, "x-delivery-count": "3"}) == ("42", "unknown", 0)
    assert death({"x-death": [{"queue": "q", "reason": "rejected"}]}) == ("q", "rejected", 0)
