"""edXML end to end: DMS files in A's outbox reach B's inbox as edXML, statuses come back.

One relay and two adapters (A sends, B receives, both configured with ``format = "edxml"``) run
as real processes on an environment of their own. The national-axis samples are used with their
agency codes replaced by random ones (RabbitMQ users are global to the broker).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.edxml import parse_document, parse_status
from relay.db.engine import make_engine
from relay.errors import NotFound
from relay.queries.trace import load_trace
from schemas import BusinessType, Document, Status
from tests.adapter_support import AdapterProcess, agency_url, drop, write_config
from tests.relay_support import RelayProcess, add_agency, settings_env, wait_until
from tests.services import random_code

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "edxml"
ORIGINAL_ID = "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
WAIT = 30.0


@dataclass
class Side:
    code: str
    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def documents(self) -> list[Document]:
        return [parse_document(p.read_bytes()) for p in _files(self.root / "inbox" / "documents")]

    def statuses(self) -> list[Status]:
        return [parse_status(p.read_bytes()) for p in _files(self.root / "inbox" / "statuses")]


@dataclass
class World:
    a: Side
    b: Side
    c: str  # a second recipient with no adapter running
    env: dict[str, str]
    engine: Engine

    def sample(self, name: str, number: str = "1234") -> bytes:
        """A sample with this world's codes (G22 -> A, H26 -> B, H29 -> C) and number."""
        text = (SAMPLES / name).read_text(encoding="utf-8")
        for old, new in (
            ("000.00.00.G22", self.a.code),
            ("000.00.00.H26", self.b.code),
            ("000.00.00.H29", self.c),
            ("1234/VPCP-KSTT", f"{number}/VPCP-KSTT"),
        ):
            text = text.replace(old, new)
        return text.encode("utf-8")

    def document_id(self, number: str = "1234") -> str:
        return ORIGINAL_ID.replace("000.00.00.G22", self.a.code).replace("1234", number)

    def trace(self, document_id: str) -> dict[str, Any]:
        """What ``lienthong trace DOCUMENT_ID --json`` prints."""
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from lienthong.cli import main; main()",
                "trace",
                document_id,
                "--json",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr + out.stdout
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def state(self, document_id: str, recipient: str) -> str | None:
        """The delivery state of the first submission (read in-process: cheap to poll)."""
        try:
            with self.engine.connect() as conn:
                trace = load_trace(conn, document_id)
        except NotFound:
            return None
        rows = [r for r in trace.submissions[0].recipients if r.recipient == recipient]
        return rows[0].state if rows else None

    def cli_state(self, document_id: str, recipient: str) -> str:
        """The same, as ``lienthong trace`` shows it."""
        sub = self.trace(document_id)["submissions"][0]
        [row] = [r for r in sub["recipients"] if r["recipient"] == recipient]
        return str(row["state"])


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".edxml")


def _original_pdf() -> bytes:
    text = re.search(
        rb"ContentTransferEncoded[^>]*>([^<]+)<", (SAMPLES / "document_new.edxml").read_bytes()
    )
    assert text is not None
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(text.group(1)))) as archive:
        return archive.read(archive.namelist()[0])


def _eventually(what: str, probe: Callable[[], Any]) -> Any:
    try:
        return wait_until(probe, timeout=WAIT, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


@pytest.fixture(scope="module")
def world(make_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_env()
    engine = make_engine(settings.database_url)
    codes = [random_code() for _ in range(3)]
    agencies = [add_agency(settings, engine, code) for code in codes]
    base = tmp_path_factory.mktemp("edxml")
    relay = RelayProcess(settings).start()
    adapters: list[AdapterProcess] = []
    try:
        relay.wait_consuming(codes)
        sides = []
        for agency in agencies[:2]:
            assert agency.password is not None
            folder = base / agency.code
            config = write_config(
                folder, agency.code, agency_url(settings), agency.password, format="edxml"
            )
            adapters.append(AdapterProcess(config, folder / "adapter.log").start())
            sides.append(Side(agency.code, folder / "root"))
        yield World(a=sides[0], b=sides[1], c=codes[2], env=settings_env(settings), engine=engine)
    finally:
        for adapter in adapters:
            adapter.stop()
        relay.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def delivered(world: World) -> Document:
    """document_new.edxml dropped into A's outbox, as B's DMS finds it."""
    drop(world.a.outbox, "cong-van-1234.edxml", world.sample("document_new.edxml"))
    docs: list[Document] = _eventually("B never got the document", world.b.documents)
    [document] = docs
    return document


def test_the_document_reaches_b_as_edxml_with_the_same_pdf(
    world: World, delivered: Document
) -> None:
    assert delivered.document_id == world.document_id()
    assert delivered.sender.organ_id == world.a.code
    [attachment] = delivered.attachments
    pdf = _original_pdf()
    assert attachment.content() == pdf
    assert attachment.sha256 == hashlib.sha256(pdf).hexdigest()
    assert attachment.name == "1234-VPCP-KSTT.pdf"
    assert (world.a.outbox / "sent" / "cong-van-1234.edxml").exists()


def test_the_delivered_package_carries_the_route_in_its_trace(
    world: World, delivered: Document
) -> None:
    hops = [h.organ_id for h in delivered.trace]
    assert hops[0] == world.a.code  # the DMS's own TraceHeader
    assert hops[-2:] == [world.a.code, world.b.code]  # the hub hop, then the receiver
    assert delivered.trace[-1].timestamp >= delivered.trace[0].timestamp


def test_b_status_packages_01_to_06_come_back_to_a_as_edxml(
    world: World, delivered: Document
) -> None:
    names = {
        "01": "status_01_inbox.edxml",
        "03": "status_03_acceptance.edxml",
        "04": "status_04_assignment.edxml",
        "05": "status_05_processing.edxml",
        "06": "status_06_finish.edxml",
        "02": "status_02_rejection.edxml",
    }

    def codes_at_a() -> list[str]:
        return sorted(
            s.status_code for s in world.a.statuses() if s.document_id == world.document_id()
        )

    # The adapter's automatic 01 comes first; then each dropped package in turn (one at a
    # time, so that the relay sees them in this order).
    _eventually("A did not get the automatic 01", lambda: "01" in codes_at_a())
    expected = ["01"]
    for code, name in names.items():
        drop(world.b.outbox, f"{code}-{name}", world.sample(name))
        expected = sorted([*expected, code])
        want = list(expected)
        _eventually(f"A did not get status {code}", lambda: codes_at_a() == want)  # noqa: B023
    from_b = [s for s in world.a.statuses() if s.description and "Phân công" in s.description]
    assert from_b and from_b[0].sender.organ_id == world.b.code
    assert world.cli_state(world.document_id(), world.b.code) == "completed"


def _send_and_wait_arrival(world: World, number: str) -> str:
    """A fresh copy of the new document (another number) delivered to B and answered by 01."""
    document_id = world.document_id(number)
    drop(world.a.outbox, f"cv-{number}.edxml", world.sample("document_new.edxml", number))
    _eventually(
        "B never got the document",
        lambda: [d for d in world.b.documents() if d.document_id == document_id],
    )
    _eventually(
        "A never got status 01",
        lambda: [s for s in world.a.statuses() if s.document_id == document_id],
    )
    _eventually(
        "the relay never recorded the delivery",
        lambda: world.state(document_id, world.b.code) == "delivered",
    )
    return document_id


def _status_at(side: Side, document_id: str, code: str) -> list[Status]:
    return [s for s in side.statuses() if s.document_id == document_id and s.status_code == code]


def test_take_back_13_agreed_with_15_recalls_the_delivery(world: World) -> None:
    number = uuid.uuid4().hex[:6]
    document_id = _send_and_wait_arrival(world, number)
    drop(world.a.outbox, f"13-{number}.edxml", world.sample("status_13_cancellation.edxml", number))
    _eventually("B never got 13", lambda: _status_at(world.b, document_id, "13"))
    assert world.state(document_id, world.b.code) == "recall_requested"
    drop(
        world.b.outbox,
        f"15-{number}.edxml",
        world.sample("status_15_change-acceptance.edxml", number),
    )
    _eventually("A never got 15", lambda: _status_at(world.a, document_id, "15"))
    _eventually(
        "the delivery is not recalled",
        lambda: world.state(document_id, world.b.code) == "recalled",
    )
    assert world.cli_state(document_id, world.b.code) == "recalled"


def test_take_back_13_refused_with_16_returns_the_delivery_to_its_state(world: World) -> None:
    number = uuid.uuid4().hex[:6]
    document_id = _send_and_wait_arrival(world, number)
    drop(world.a.outbox, f"13-{number}.edxml", world.sample("status_13_cancellation.edxml", number))
    _eventually("B never got 13", lambda: _status_at(world.b, document_id, "13"))
    assert world.state(document_id, world.b.code) == "recall_requested"
    drop(
        world.b.outbox,
        f"16-{number}.edxml",
        world.sample("status_16_change-rejection.edxml", number),
    )
    _eventually("A never got 16", lambda: _status_at(world.a, document_id, "16"))
    _eventually(
        "the delivery did not return to delivered",
        lambda: world.state(document_id, world.b.code) == "delivered",
    )
    events = [
        e["status_code"]
        for sub in world.trace(document_id)["submissions"]
        for r in sub["recipients"]
        if r["recipient"] == world.b.code
        for e in r["events"]
    ]
    assert {"01", "13", "16"} <= set(events)


def test_a_revoke_reaches_b_and_shows_in_the_trace(world: World, delivered: Document) -> None:
    drop(world.a.outbox, "thu-hoi-1234.edxml", world.sample("document_revoke.edxml"))
    revokes = _eventually(
        "B never got the revoke",
        lambda: [d for d in world.b.documents() if d.business_type == BusinessType.REVOKE],
    )
    assert revokes[0].document_id == world.document_id()
    trace = _eventually(
        "trace never showed the revoke",
        lambda: (t := world.trace(world.document_id())) and len(t["submissions"]) == 2 and t,
    )
    assert [s["business_type"] for s in trace["submissions"]] == [0, 1]
    [original_b] = [
        r for r in trace["submissions"][0]["recipients"] if r["recipient"] == world.b.code
    ]
    assert "revoked" in [e["kind"] for e in original_b["events"]]
