"""The final per-recipient table, read from the relay's database, and its verification."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, select

from relay.db.tables import agencies, deliveries, documents, events
from schemas import BusinessType, describe_status


@dataclass(frozen=True)
class DeliveryRow:
    document_id: str
    business_type: int
    recipient: str
    name: str
    route_to: str
    state: str
    attempts: int
    last_status: str | None  # the latest status code recorded for this delivery

    @property
    def last_status_text(self) -> str:
        if self.last_status is None:
            return "-"
        return f"{self.last_status} {describe_status(self.last_status)}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "last_status_text": self.last_status_text}


def read_deliveries(engine: Engine) -> list[DeliveryRow]:
    """Every delivery in the database, in submission order, with its latest status code."""
    query = (
        select(
            deliveries.c.id,
            documents.c.document_id,
            documents.c.business_type,
            deliveries.c.recipient,
            agencies.c.name,
            deliveries.c.route_to,
            deliveries.c.state,
            deliveries.c.attempts,
        )
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .join(agencies, agencies.c.code == deliveries.c.recipient, isouter=True)
        .order_by(documents.c.id, deliveries.c.id)
    )
    statuses = (
        select(events.c.delivery_id, events.c.status_code)
        .where(events.c.status_code.is_not(None), events.c.delivery_id.is_not(None))
        .order_by(events.c.at, events.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        last: dict[int, str] = {}
        for delivery_id, code in conn.execute(statuses):
            last[delivery_id] = code
    return [
        DeliveryRow(
            document_id=r.document_id,
            business_type=r.business_type,
            recipient=r.recipient,
            name=r.name or "?",
            route_to=r.route_to,
            state=r.state,
            attempts=r.attempts,
            last_status=last.get(r.id),
        )
        for r in rows
    ]


def mismatches(rows: list[DeliveryRow], expected: dict[tuple[int, str], str]) -> list[str]:
    """What differs from ``expected`` ((business type, recipient) -> state), one line each."""
    found = {(r.business_type, r.recipient): r for r in rows}
    problems = []
    for (btype, recipient), state in expected.items():
        kind = BusinessType(btype).description
        row = found.get((btype, recipient))
        if row is None:
            problems.append(f"{kind} → {recipient}: no delivery recorded (expected {state})")
        elif row.state != state:
            problems.append(
                f"{kind} → {recipient} {row.name}: state {row.state} (expected {state}), "
                f"last status {row.last_status_text}"
            )
    for key, row in found.items():
        if key not in expected:
            problems.append(
                f"unexpected delivery {BusinessType(row.business_type).description} → "
                f"{row.recipient} in state {row.state}"
            )
    return problems


def render_table(rows: list[DeliveryRow]) -> str:
    """A plain text table: document, recipient, name, state, last status."""
    header = ("document", "recipient", "name", "state", "last status")
    body = [
        (
            BusinessType(r.business_type).description,
            r.recipient + ("" if r.route_to == r.recipient else f" (via {r.route_to})"),
            r.name,
            r.state,
            r.last_status_text,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(b) for b in body)])
