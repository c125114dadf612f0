"""Playing the scenario: the sender's DMS drops files, the recipients' simulated DMSes answer.

Everything happens through the adapters' folders (DESIGN §5), exactly as a real DMS would do
it; the demo process itself never talks to RabbitMQ while the scenario plays. A recipient's DMS
sends its next status only once the sender has seen the previous one, like a clerk working
through the document, so the timeline reads in order.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.formats.registry import get_format
from lienthong.demo import scenario as sc
from lienthong.demo.environment import AdapterHome
from lienthong.demo.errors import DemoFailed
from lienthong.demo.folders import NewFiles, drop_file
from lienthong.demo.processes import Supervisor
from lienthong.demo.timeline import Timeline
from schemas import BusinessType, Document, Receipt, Status, decode_message, describe_status
from schemas.envelope import encode_message, message_type

POLL_SECONDS = 0.1


@dataclass
class Clerk:
    """A recipient's simulated DMS working through its answers to the công văn."""

    recipient: str
    route_to: str  # whose adapter folder it uses (the host, for a hosted unit)
    to_send: list[str]
    waiting_for: str = "01"  # the status the sender must see before the next step
    ready_at: float | None = None

    @property
    def done(self) -> bool:
        return not self.to_send


@dataclass
class Play:
    agencies: list[sc.Agency]
    homes: dict[str, AdapterHome]  # connected agency code -> its folders
    supervisor: Supervisor
    timeline: Timeline
    deadline: float  # time.monotonic() after which the scenario has failed
    pace: float = 0.3  # seconds a clerk waits between two steps
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (from, code) at sender
    clerks: list[Clerk] = field(default_factory=list)
    revoke_received: bool = False
    _watch: dict[tuple[str, str], NewFiles] = field(default_factory=dict)
    _errors: dict[str, NewFiles] = field(default_factory=dict)
    _sequence: int = 0
    _copies: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for code, home in self.homes.items():
            for kind in ("documents", "statuses", "receipts"):
                self._watch[(code, kind)] = NewFiles(home.inbox(kind), (".json", ".edxml"))
            self._errors[code] = NewFiles(home.outbox / "rejected", (".error.txt",))
        self.clerks = [
            Clerk(r, sc.route_of(self.agencies, r), list(sc.ANSWERS[r])) for r in sc.RECIPIENTS
        ]

    # -- the scenario -----------------------------------------------------------------------

    def run(self) -> None:
        document = sc.new_document(self.agencies)
        fmt = self._send(document, "cong-van-1234-VPCP-KSTT")
        self.timeline.restart()
        self.timeline.event(
            sc.SENDER,
            f"sends công văn {sc.NOTATION} ({fmt}) to {len(document.recipients)} recipients: "
            + ", ".join(document.recipient_codes()),
        )
        self._wait(
            lambda: all(c.done and self._seen_last(c) for c in self.clerks),
            "every recipient's answer to reach the sender",
        )

        revoke = sc.revoke_document(self.agencies)
        fmt = self._send(revoke, "thu-hoi-1234-VPCP-KSTT", edxml=False)
        self.timeline.event(
            sc.SENDER,
            f"revokes {sc.NOTATION} at {sc.REVOKED_AT} ({fmt}; thu hồi, BussinessDocType 1)",
        )
        self._wait(
            lambda: self.revoke_received and self.seen[(sc.REVOKED_AT, "01")] >= 2,
            f"the revoke to reach {sc.REVOKED_AT} and its 01 to come back",
        )

    def _seen_last(self, clerk: Clerk) -> bool:
        return self.seen[(clerk.recipient, clerk.waiting_for)] > 0

    def _send(self, message: Document | Status, stem: str, *, edxml: bool = True) -> str:
        """Drop ``message`` in its sender's outbox, as edXML if that DMS speaks it; the format."""
        self._sequence += 1
        sender = message.sender.organ_id
        home = self.homes[sc.route_of(self.agencies, sender)]
        if edxml and sender in sc.EDXML_DMS:
            fmt = get_format("edxml")
            data = (
                fmt.write_document(message)
                if isinstance(message, Document)
                else fmt.write_status(message)
            )
            drop_file(home.outbox, f"{self._sequence:03d}-{stem}.edxml", data)
            return "edXML"
        drop_file(home.outbox, f"{self._sequence:03d}-{stem}.json", encode_message(message))
        return "JSON"

    # -- the loop -----------------------------------------------------------------------------

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        while True:
            self.supervisor.check_alive()
            self._pump()
            if condition():
                return
            if time.monotonic() > self.deadline:
                raise DemoFailed(f"timed out waiting for {what}; {self._progress()}")
            time.sleep(POLL_SECONDS)

    def _progress(self) -> str:
        parts = []
        for c in self.clerks:
            if c.done and self._seen_last(c):
                continue
            got = (
                ", ".join(
                    code for (who, code), n in sorted(self.seen.items()) if who == c.recipient and n
                )
                or "nothing"
            )
            parts.append(f"{c.recipient}: sender has seen {got}, waiting for {c.waiting_for}")
        return "; ".join(parts) or "all recipients answered"

    def _pump(self) -> None:
        # Documents first, then receipts, then statuses: the order in which they happen.
        for code in self.homes:
            for path in self._errors[code].poll():
                reason = path.read_text("utf-8", errors="replace").strip()
                raise DemoFailed(f"the adapter of {code} rejected {path.name}: {reason}")
        for code in self.homes:
            for path in self._watch[(code, "documents")].poll():
                self._on_document(code, path)
        for code in self.homes:
            for path in self._watch[(code, "receipts")].poll():
                self._on_receipt(code, path)
        for code in self.homes:
            for path in self._watch[(code, "statuses")].poll():
                self._on_status(code, path)
        now = time.monotonic()
        for clerk in self.clerks:
            self._step(clerk, now)

    def _read(self, path: Path, expect: str) -> Document | Status | Receipt:
        try:
            data = path.read_bytes()
            if path.suffix == ".edxml":
                message: Document | Status | Receipt = get_format("edxml").read(data)
            else:
                message = decode_message(data, expect=expect)
        except (OSError, ValueError) as e:  # InvalidMessage, FormatError
            raise DemoFailed(f"cannot read {path}: {e}") from e
        if message_type(message) != expect:
            raise DemoFailed(f"{path} holds a {message_type(message)}, not a {expect}")
        return message

    def _on_document(self, code: str, path: Path) -> None:
        doc = self._read(path, "document")
        assert isinstance(doc, Document)
        mine = [r for r in doc.recipient_codes() if sc.route_of(self.agencies, r) == code]
        where = f"({'edXML' if path.suffix == '.edxml' else 'JSON'}) in inbox/documents/"
        if doc.business_type == BusinessType.REVOKE:
            self.revoke_received = True
            self.timeline.event(code, f"DMS receives the revoke of {sc.NOTATION} {where}")
            return
        # One copy arrives per recipient; a host receives its units' copies too.
        self._copies[code] += 1
        n = self._copies[code]
        copy = f" (copy {n} of {len(mine)}, for {', '.join(mine)})" if len(mine) > 1 else ""
        self.timeline.event(code, f"DMS receives {sc.NOTATION} {where}{copy}")

    def _on_receipt(self, code: str, path: Path) -> None:
        receipt = self._read(path, "receipt")
        assert isinstance(receipt, Receipt)
        if receipt.kind == "accepted" and receipt.message_type == "document":
            outcomes = ", ".join(
                r.code
                + ("" if r.route_to in (None, r.code) else f" via {r.route_to}")
                + ("" if r.outcome == "queued" else f" {r.outcome.value}")
                for r in receipt.recipients
            )
            self.timeline.event("relay", f"accepted the document from {code}: {outcomes}")
            not_queued = [r for r in receipt.recipients if r.outcome != "queued"]
            if not_queued:
                raise DemoFailed(
                    "the relay did not route to "
                    + ", ".join(f"{r.code} ({r.outcome.value}: {r.reason})" for r in not_queued)
                )
        elif receipt.kind != "accepted":
            self.timeline.event("relay", f"{receipt.kind.value} for {code}: {receipt.reason}")
            raise DemoFailed(
                f"the relay answered {receipt.kind.value} to a {receipt.message_type} from "
                f"{code}: {receipt.reason or receipt.recipient}"
            )

    def _on_status(self, code: str, path: Path) -> None:
        status = self._read(path, "status")
        assert isinstance(status, Status)
        who = status.sender.organ_id
        self.seen[(who, status.status_code)] += 1
        self.timeline.event(
            who, f"→ {code}  {status.status_code} {describe_status(status.status_code)}"
        )

    def _step(self, clerk: Clerk, now: float) -> None:
        if clerk.done or not self._seen_last(clerk):
            return
        if clerk.ready_at is None:
            clerk.ready_at = now + self.pace
            return
        if now < clerk.ready_at:
            return
        code = clerk.to_send.pop(0)
        status = sc.status(self.agencies, clerk.recipient, code)
        self._send(status, f"status-{code}-{clerk.recipient}")
        clerk.waiting_for = code
        clerk.ready_at = None
