"""The receiving adapter SIGKILLed right after it handed a file over: nothing handed twice.

Issue 12 item 7: the adapter killed 0–20 ms after a new inbox file appeared, while a DMS took
each file away at once, handed documents over more than once under the same file name. Here a
DMS thread takes files as they appear and counts each DocumentId (a double is seen even when
the file name repeats), and the adapter is killed several times aimed at that window.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from pathlib import Path

import pytest

from relay.broker.management import ManagementClient
from relay.config import Settings
from schemas import decode_message
from schemas import topology as t
from tests.adapter_support import (
    AdapterProcess,
    Broker,
    agency_url,
    make_document,
    provision,
    wait_for,
    write_config,
)
from tests.services import random_code

pytestmark = pytest.mark.e2e

DOCUMENTS = 300
KILLS = 10
#: Deliveries the adapter takes at a time: smaller batches give more hand-overs to aim at.
PREFETCH = 20


class Dms(threading.Thread):
    """Takes every file that appears in ``inbox/documents/`` at once and counts its DocumentId."""

    def __init__(self, inbox: Path) -> None:
        super().__init__(name="dms", daemon=True)
        self.inbox = inbox
        self.handed: collections.Counter[str] = collections.Counter()
        self.new_file = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                entries = [e for e in os.scandir(self.inbox) if not e.name.startswith(".")]
            except FileNotFoundError:
                entries = []
            for entry in entries:
                self.new_file.set()
                data = Path(entry.path).read_bytes()
                os.unlink(entry.path)  # the DMS moves the file away at once
                document_id = str(decode_message(data).document_id)
                with self.lock:
                    self.handed[document_id] += 1
            if not entries:
                time.sleep(0.001)

    def counts(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.handed)


def test_an_adapter_killed_right_after_a_hand_over_hands_every_document_over_once(
    env: Settings, management: ManagementClient, tmp_path: Path
) -> None:
    code = random_code()
    password = provision(env, management, code)
    config = write_config(tmp_path / code, code, agency_url(env), password, prefetch=PREFETCH)
    inbox = config.parent / "root" / "inbox" / "documents"
    inbox.mkdir(parents=True)
    sender = random_code()
    documents = [
        make_document(sender, [code], f"{sender},2026/11/30,{i:03d}/VP") for i in range(DOCUMENTS)
    ]
    dms = Dms(inbox)
    dms.start()
    proc = AdapterProcess(config, tmp_path / "adapter.log")
    kills = 0
    rng = random.Random()
    try:
        with Broker(env) as broker:
            broker.deliver_many(code, documents)
            proc.start()
            for _ in range(KILLS):
                dms.new_file.clear()
                if not dms.new_file.wait(timeout=30) or len(dms.counts()) >= DOCUMENTS:
                    break
                time.sleep(rng.uniform(0.0, 0.020))  # aimed at the window after a hand-over
                proc.kill()
                kills += 1
                proc.start()
            wait_for(lambda: len(dms.counts()) >= DOCUMENTS, 60, "every document at the DMS")
            wait_for(lambda: broker.count(t.inbox_queue(code)) == 0, 30, "the inbox emptied")
            wait_for(lambda: broker.count(t.outbox_queue(code)) >= DOCUMENTS, 30, "the statuses 01")
            time.sleep(0.5)  # a late double would show up now
            assert proc.stop() == 0
            replies = broker.take(t.outbox_queue(code))
    finally:
        dms.stop.set()
        dms.join(timeout=10)
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
    counts = dms.counts()
    doubles = {d: n for d, n in counts.items() if n > 1}
    finished = proc.log_text().count('"inbox.hand_over_finished"')
    print(
        f"{kills} kills: {sum(counts.values())} hand-overs of {len(counts)} documents, "
        f"{len(doubles)} handed more than once (max {max(counts.values())}); "
        f"{finished} interrupted hand-overs finished on restart"
    )
    assert kills >= 5, f"only {kills} kills landed before the documents were all handed over"
    assert sorted(counts) == sorted(str(d.document_id) for d in documents)
    assert doubles == {}
    assert len({props.message_id for props, _ in replies}) == DOCUMENTS  # type: ignore[attr-defined]
