"""The fault suite's stage: agency A's adapter sends, the relay routes, agency B's adapter
receives, and B's DMS takes every file as it appears and counts each DocumentId.

All three are real processes (``lienthong adapter run``, ``lienthong relay run``); a case breaks
one of them or a service under them, then :meth:`Scene.tally` says what was sent, what arrived,
what was lost and what was handed to the DMS more than once. A DocumentId is what the DMS files
a document under, so it is counted, not the file name (a second hand-over can reuse the name).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from relay.config import Settings
from relay.db.engine import make_engine
from schemas import decode_message, encode_message
from schemas import topology as t
from tests.adapter_support import (
    AdapterProcess,
    Broker,
    agency_url,
    drop,
    make_document,
    write_config,
)
from tests.relay_support import Agency, RelayProcess, add_agency
from tests.services import random_code

#: How often the DMS looks into its inbox folder; small, so a kill can be aimed at a new file.
DMS_POLL_SECONDS = 0.003


@dataclass
class Tally:
    """One row of the fault table."""

    case: str
    sent: int
    arrived: int
    lost: int
    doubled: int
    notes: str
    seconds: float

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.doubled == 0


class Dms(threading.Thread):
    """B's document management system: takes each document file from ``inbox/documents`` as soon
    as it is visible (moves it away, as a DMS that imports it would) and counts its DocumentId.

    ``on_file`` is called (on this thread) after each file is taken.
    """

    def __init__(self, inbox: Path, taken: Path) -> None:
        super().__init__(name="dms", daemon=True)
        self.inbox = inbox
        self.taken = taken
        self.counts: Counter[str] = Counter()
        self.handovers = 0
        self.unreadable: list[str] = []
        self.new_file = threading.Event()
        self.on_file: Callable[[], None] | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.taken.mkdir(parents=True, exist_ok=True)
        while not self._halt.is_set():
            if not self._take_all():
                time.sleep(DMS_POLL_SECONDS)

    def _take_all(self) -> int:
        taken = 0
        for name in os.listdir(self.inbox):
            path = self.inbox / name
            if name.startswith(".") or not path.is_file():
                continue
            try:
                data = path.read_bytes()
                os.replace(path, self.taken / f"{self.handovers:06d}-{name}")
            except FileNotFoundError:
                continue
            try:
                document_id = str(decode_message(data).document_id)  # type: ignore[union-attr]
            except Exception as e:
                self.unreadable.append(f"{name}: {e}")
                continue
            with self._lock:
                self.counts[document_id] += 1
                self.handovers += 1
            taken += 1
            self.new_file.set()
            if self.on_file is not None:
                self.on_file()
        return taken

    def arrived(self) -> int:
        with self._lock:
            return len(self.counts)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)


@dataclass
class Scene:
    settings: Settings
    engine: Engine
    root: Path
    adapter_url: str
    a: Agency
    b: Agency
    relay: RelayProcess
    adapter_a: AdapterProcess
    adapter_b: AdapterProcess
    dms: Dms
    relays: list[RelayProcess] = field(default_factory=list)
    #: stops every relay on exit; a relay's log is removed unless the case failed
    exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    sent: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    # -- sending --------------------------------------------------------------------------

    def send(self, n: int) -> list[str]:
        """Drop ``n`` documents for B into A's outbox folder (as A's DMS would); their ids."""
        ids = [f"{self.a.code},2026/11/30,{uuid.uuid4().hex[:10]}/CHAOS" for _ in range(n)]
        outbox = self.root / self.a.code / "root" / "outbox"
        for i, doc_id in enumerate(ids):
            body = encode_message(make_document(self.a.code, [self.b.code], doc_id))
            drop(outbox, f"cv-{len(self.sent) + i:05d}.json", body)
        self.sent += ids
        return ids

    # -- the processes --------------------------------------------------------------------

    def restart_relay(self) -> RelayProcess:
        """A new relay process (the old one was killed or stopped)."""
        self.relay.stop()
        self.relay = RelayProcess(self.settings)
        self.relays.append(self.relay)
        self.exits.enter_context(self.relay.start(wait=False))
        self.relay.wait_for_log('"relay.started"', timeout=120)
        return self.relay

    def processes_alive(self) -> dict[str, bool]:
        return {
            "relay": self.relay.running(),
            "adapter A": _alive(self.adapter_a),
            "adapter B": _alive(self.adapter_b),
        }

    def connection_losses(self) -> dict[str, int]:
        """How often each process logged losing its broker connection so far."""

        def count(path: Path, event: str) -> int:
            text = path.read_text(errors="replace") if path.exists() else ""
            return text.count(f'"{event}"')

        return {
            "relay": sum(
                count(r.log_path, event)
                for r in self.relays
                for event in ("relay.connection_lost", "relay.connection_abandoned")
            ),
            "adapter A": count(self.adapter_a.log_path, "adapter.broker_down"),
            "adapter B": count(self.adapter_b.log_path, "adapter.broker_down"),
        }

    def relay_back_after(self, wall: float) -> float | None:
        """Seconds from ``wall`` (``time.time()``) to the relay's next ``relay.started``."""
        for line in self.relay.log_text().splitlines():
            if '"relay.started"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                stamp = dt.datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
                if stamp >= wall:
                    return stamp - wall
        return None

    # -- waiting and counting -------------------------------------------------------------

    def wait_arrived(self, at_least: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dms.arrived() >= at_least:
                return True
            time.sleep(0.02)
        return False

    def settle(self, timeout: float, quiet: float = 5.0) -> None:
        """Until every sent document arrived (or ``timeout``), then ``quiet`` seconds more with
        B's inbox queue empty, so late second hand-overs are counted too."""
        self.wait_arrived(len(self.sent), timeout)
        with contextlib.suppress(Exception), Broker(self.settings) as broker:
            queue = t.inbox_queue(self.b.code)
            deadline = time.monotonic() + 30
            while broker.count(queue) > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
        time.sleep(quiet)

    def receipts_at_a(self, expect: int, timeout: float) -> Counter[str]:
        """A's ``accepted`` receipts handed to its DMS folder, counted by DocumentId, once
        ``expect`` are there (or ``timeout``). The relay sends a batch's receipts together; a
        receipt sent again after a crash, grouped as it then falls, must reach A once."""
        folder = self.root / self.a.code / "root" / "inbox" / "receipts"
        deadline = time.monotonic() + timeout
        while True:
            counts: Counter[str] = Counter()
            for path in folder.glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    receipt = json.loads(path.read_bytes())
                    if receipt.get("kind") == "accepted":
                        counts[str(receipt.get("document_id"))] += 1
            if counts.total() >= expect or time.monotonic() >= deadline:
                return counts
            time.sleep(0.1)

    def tally(self, case: str, notes: str = "") -> Tally:
        counts = self.dms.snapshot()
        sent = set(self.sent)
        arrived = sent & set(counts)
        doubled = {d for d, c in counts.items() if c > 1}
        extra = []
        if doubled:
            extra.append(
                f"{self.dms.handovers} hand-overs, most {max(counts.values())}x for one id"
            )
        strangers = set(counts) - sent
        if strangers:
            extra.append(f"{len(strangers)} ids never sent")
        if self.dms.unreadable:
            extra.append(f"{len(self.dms.unreadable)} unreadable files")
        return Tally(
            case=case,
            sent=len(sent),
            arrived=len(arrived),
            lost=len(sent - arrived),
            doubled=len(doubled),
            notes="; ".join(x for x in [notes, *extra] if x),
            seconds=round(time.monotonic() - self.started, 1),
        )

    def logs(self, lines: int = 15) -> str:
        """Where each process logged, with its last warnings and errors (for a failure)."""
        named = [(f"relay #{n}", r.log_path) for n, r in enumerate(self.relays)]
        named += [("adapter A", self.adapter_a.log_path), ("adapter B", self.adapter_b.log_path)]
        parts = []
        for name, path in named:
            text = path.read_text(errors="replace") if path.exists() else ""
            bad = [x for x in text.splitlines() if '"level": "info"' not in x][-lines:]
            parts.append(f"--- {name}: {path}\n" + "\n".join(x[:400] for x in bad))
        return "\n".join(parts)


def _alive(p: AdapterProcess) -> bool:
    return p.proc is not None and p.proc.poll() is None


def wait_connected(p: AdapterProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while '"adapter.connected"' not in p.log_text():
        if p.proc is not None and p.proc.poll() is not None:
            raise AssertionError(f"adapter exited ({p.proc.returncode}):\n{p.log_text()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"adapter not connected in {timeout}s:\n{p.log_text()}")
        time.sleep(0.05)


def restart_adapter(p: AdapterProcess, timeout: float = 120) -> None:
    """Start a (killed) adapter again; returns once it logged one more ``adapter.connected``."""
    before = p.log_text().count('"adapter.connected"')
    p.start()
    deadline = time.monotonic() + timeout
    while p.log_text().count('"adapter.connected"') <= before:
        if p.proc is not None and p.proc.poll() is not None:
            raise AssertionError(f"adapter exited ({p.proc.returncode}):\n{p.log_text()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"adapter not connected again in {timeout}s:\n{p.log_text()}")
        time.sleep(0.02)


@contextlib.contextmanager
def scene(settings: Settings, root: Path, *, adapter_port: int | None = None) -> Iterator[Scene]:
    """Agencies A and B in ``settings``' directory and broker, the relay, both adapters (to the
    broker's port, or ``adapter_port``) and B's DMS, all running; stopped on exit."""
    engine = make_engine(settings.database_url)
    started: list[AdapterProcess] = []
    dms: Dms | None = None
    with contextlib.ExitStack() as exits:
        exits.callback(engine.dispose)
        a = add_agency(settings, engine, random_code())
        b = add_agency(settings, engine, random_code())
        assert a.password and b.password
        url = agency_url(settings, adapter_port)
        relay = RelayProcess(settings)
        exits.enter_context(relay.start(wait=False))  # stopped on exit, its log kept on failure
        relay.wait_for_log('"relay.started"', timeout=120)
        relay.wait_consuming([a.code, b.code], timeout=120)

        def stop_adapters() -> None:
            if dms is not None:
                dms.halt()
            for proc in started:
                with contextlib.suppress(Exception):
                    proc.stop()
                if _alive(proc):
                    proc.kill()

        exits.callback(stop_adapters)
        for agency in (a, b):
            assert agency.password is not None
            config = write_config(root / agency.code, agency.code, url, agency.password)
            started.append(AdapterProcess(config, root / f"adapter-{agency.code}.log").start())
        for proc in started:
            wait_connected(proc)
        dms = Dms(root / b.code / "root" / "inbox" / "documents", root / "dms-taken")
        dms.start()
        yield Scene(
            settings=settings,
            engine=engine,
            root=root,
            adapter_url=url,
            a=a,
            b=b,
            relay=relay,
            adapter_a=started[0],
            adapter_b=started[1],
            dms=dms,
            relays=[relay],
            exits=exits,
        )
