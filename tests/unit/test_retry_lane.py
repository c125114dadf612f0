"""A retry or an operator's resend of an urgent document goes to the recipient's urgent inbox,
the lane its first copy took (DESIGN §3); an ordinary document's copy to the ordinary one."""

from __future__ import annotations

import pytest

from relay.retry import schedule, store


def _due(priority: int | None) -> store.Due:
    return store.Due(
        store.Delivery(
            id=1,
            document_pk=1,
            recipient="000.00.00.G22",
            route_to="000.00.00.G22",
            message_id="copy-1",
            state="retrying",
            attempts=1,
            submission_id="sub-1",
            document_id="000.00.00.G01,2026/11/30,1/VP",
            sender="000.00.00.G01",
            submitted_by="000.00.00.G01",
            priority=priority,
        ),
        b"{}",
    )


@pytest.mark.parametrize(
    ("priority", "routing_key"),
    [
        (1, "000.00.00.G22.urgent"),
        (4, "000.00.00.G22.urgent"),
        (0, "000.00.00.G22"),
        (None, "000.00.00.G22"),
    ],
)
def test_a_copy_sent_again_keeps_the_lane_of_its_document(
    priority: int | None, routing_key: str
) -> None:
    out = schedule.outgoing(_due(priority))
    assert out.routing_key == routing_key
    assert out.message_id == "copy-1" and out.body == b"{}"
