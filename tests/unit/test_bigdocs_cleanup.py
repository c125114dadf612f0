"""Attachment files at the adapter are deleted once nothing needs them, and a transfer that
never finishes is abandoned (issue 17): on a real spool and real folders in a temp folder."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.assembly import Assembler
from adapters.config import AdapterConfig
from adapters.formats.registry import get_format
from adapters.handover import FolderHandOver
from adapters.inbox import Action, Delivery, InboxRecorder
from adapters.metrics import SpoolCollector
from adapters.outbox import OutboxScanner
from adapters.received import ReceivedStore
from adapters.spool import Spool
from schemas import Attachment, Receipt
from schemas import topology as t
from schemas.chunks import TYPE_CHUNK, TYPE_CHUNK_REFUSED, ChunkHeader, ChunkRefused, encode_chunk
from schemas.envelope import encode_message
from schemas.receipt import ReceiptKind
from tests.adapter_support import make_document
from tests.bigdocs_support import random_file, write_package

MiB = 1024 * 1024
A, B, C = "000.00.00.G22", "000.00.00.H26", "000.00.00.H41"


def _config(root: Path, agency: str, **extra: object) -> AdapterConfig:
    config = AdapterConfig.model_validate(
        {
            "agency": agency,
            "amqp_url": "amqp://127.0.0.1:5672/lienthong",
            "root": root,
            "chunk_threshold_bytes": 64 * 1024,
            "chunk_window": 4,
            **extra,
        }
    )
    config.ensure_folders()
    return config


# -- the sender's side: out/<sha256> ---------------------------------------------------------


class Sender:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.config = _config(tmp / "a", A)
        self.spool = Spool(self.config.spool_path)
        self.recorder = InboxRecorder(self.config, self.spool)
        self.scanner = OutboxScanner(self.config, self.spool)

    def drop(self, number: str, original: Path) -> str:
        """Drop a package into outbox/ and take it; the document's message id."""
        path = self.config.outbox / f"cong-van-{number}.edxml"
        write_package(path, original, sender=A, recipients=[B], number=number)
        taken = self.scanner.take(path)
        assert taken is not None and taken.entry is not None, taken
        self.spool.mark_sent([row.seq for row in self.spool.unsent(1000)])  # the broker confirmed
        return taken.entry.message_id

    def receipt(self, kind: ReceiptKind, in_reply_to: str) -> Action:
        receipt = Receipt(kind=kind, in_reply_to=in_reply_to, message_type="document")
        delivery = Delivery(
            message_id=str(receipt.receipt_id),
            message_type=t.TYPE_RECEIPT,
            body=encode_message(receipt),
        )
        return self.recorder.handle(delivery)

    def out(self) -> list[str]:
        return sorted(p.name for p in (self.config.blobs_dir / "out").iterdir())

    def sweep(self) -> None:
        self.recorder.assembler.pump()  # a broker round (its tables, its first sweep)
        self.recorder.assembler.blobs.sweep()


@pytest.fixture
def sender(tmp_path: Path) -> Sender:
    return Sender(tmp_path)


def test_a_sent_attachment_is_kept_until_the_relay_accepts_the_document(
    sender: Sender, tmp_path: Path
) -> None:
    original = tmp_path / "scan.bin"
    digest = random_file(original, 300 * 1024)
    message_id = sender.drop("1", original)
    assert sender.out() == [digest]
    sender.sweep()
    assert sender.out() == [digest], "deleted before the relay held the bytes"
    assert sender.receipt(ReceiptKind.ACCEPTED, "some-other-submission") is Action.ACK
    sender.sweep()
    assert sender.out() == [digest]
    assert sender.receipt(ReceiptKind.ACCEPTED, message_id) is Action.ACK
    sender.sweep()
    assert sender.out() == []


def test_a_rejected_document_frees_its_attachment_and_keeps_the_package_file(
    sender: Sender, tmp_path: Path
) -> None:
    original = tmp_path / "scan.bin"
    random_file(original, 300 * 1024)
    message_id = sender.drop("2", original)
    sender.receipt(ReceiptKind.REJECTED, message_id)
    sender.sweep()
    assert sender.out() == []
    assert (sender.config.sent_dir / "cong-van-2.edxml").is_file()


def test_an_attachment_another_submission_still_sends_is_kept(
    sender: Sender, tmp_path: Path
) -> None:
    original = tmp_path / "scan.bin"
    digest = random_file(original, 300 * 1024)
    first = sender.drop("3", original)
    second = sender.drop("4", original)  # the same scan in a second document
    sender.receipt(ReceiptKind.ACCEPTED, first)
    sender.sweep()
    assert sender.out() == [digest]
    sender.receipt(ReceiptKind.DELIVERY_FAILED, second)  # not the relay's answer to intake
    sender.sweep()
    assert sender.out() == [digest]
    sender.receipt(ReceiptKind.ACCEPTED, second)
    sender.sweep()
    assert sender.out() == []


def test_a_file_no_submission_names_is_left_alone_while_it_may_be_being_staged(
    sender: Sender,
) -> None:
    stray = sender.config.blobs_dir / "out" / ("ab" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"staged, not spooled yet")
    sender.sweep()
    assert stray.exists()
    old = time.time() - 3600
    os.utime(stray, (old, old))  # a crash between staging and spooling, long ago
    sender.sweep()
    assert not stray.exists()


# -- the recipient's side: in/ and parts/ ---------------------------------------------------


class Recipient:
    def __init__(self, tmp: Path, **extra: object) -> None:
        self.config = _config(tmp / "b", B, format="json", **extra)
        self.start()

    def start(self) -> None:
        """(Re)open everything, as a restarted adapter does."""
        self.spool = Spool(self.config.spool_path)
        self.store = ReceivedStore(self.spool)
        self.assembler = Assembler(self.config, self.spool, self.store)
        self.folder = FolderHandOver(self.config, self.store, get_format("json"))

    def deliver(self, message_id: str, data: bytes, sender: str = A) -> str:
        document = make_document(sender, [B])
        sha = hashlib.sha256(data).hexdigest()
        document.attachments = [
            Attachment(name="scan.pdf", size=len(data), sha256=sha, data="", transfer="chunks")
        ]
        headers = {t.HEADER_SENDER: sender, t.HEADER_RECIPIENT: B}
        assert self.assembler.take(message_id, "document", encode_message(document), headers)
        return sha

    def chunks(self, data: bytes, sender: str = A, upto: int | None = None) -> None:
        sha = hashlib.sha256(data).hexdigest()
        for o in range(0, len(data) if upto is None else upto, MiB):
            piece = data[o : o + MiB]
            header = ChunkHeader(
                sha256=sha, size=len(data), offset=o, length=len(piece), sender=sender
            )
            assert self.assembler.take("c", TYPE_CHUNK, encode_chunk(header, piece), {})

    def files(self, folder: str) -> list[str]:
        return sorted(p.name for p in (self.config.blobs_dir / folder).iterdir())

    def assemblies(self) -> list[tuple[object, ...]]:
        return self.spool.read("SELECT message_id, abandoned_at, abandon_reason FROM assemblies")

    def part_rows(self) -> int:
        [(n,)] = self.spool.read("SELECT count(*) FROM assembly_parts")
        assert isinstance(n, int)
        return n


@pytest.fixture
def recipient(tmp_path: Path) -> Recipient:
    return Recipient(tmp_path)


def test_a_received_attachment_is_deleted_once_the_dms_has_the_document(
    recipient: Recipient,
) -> None:
    data = os.urandom(2 * MiB + 7)
    sha = recipient.deliver("d1", data)
    recipient.chunks(data)
    assert recipient.assembler.pump() == 1
    recipient.assembler.blobs.sweep()
    assert recipient.files("in") == [sha], "deleted before the DMS had the document"
    assert recipient.folder.hand_over_pending() == 1
    recipient.assembler.blobs.sweep()
    assert recipient.files("in") == []
    [document] = recipient.config.inbox_documents.glob("*.json")
    [attachment] = json.loads(document.read_bytes())["attachments"]
    assert Attachment.model_validate(attachment).content() == data


def test_an_attachment_left_by_a_crash_after_the_hand_over_goes_at_the_next_start(
    recipient: Recipient,
) -> None:
    data = os.urandom(MiB)
    sha = recipient.deliver("d1", data)
    recipient.chunks(data)
    recipient.assembler.pump()
    recipient.folder.hand_over_pending()  # killed before any sweep: the file is left
    assert recipient.files("in") == [sha]
    recipient.start()
    recipient.assembler.pump()  # the first broker round sweeps
    assert recipient.files("in") == []


def test_an_attachment_two_documents_share_stays_until_both_are_handed_over(
    recipient: Recipient,
) -> None:
    data = os.urandom(MiB)
    sha = recipient.deliver("d1", data)
    recipient.chunks(data)
    recipient.assembler.pump()
    recipient.deliver("d2", data, sender=C)  # the same scan from another agency, later
    recipient.folder.hand_over_pending()
    recipient.assembler.blobs.sweep()
    assert recipient.files("in") == [sha]
    assert recipient.assembler.pump() == 1  # the bytes are here already
    recipient.folder.hand_over_pending()
    recipient.assembler.blobs.sweep()
    assert recipient.files("in") == []
    assert len(list(recipient.config.inbox_documents.glob("*.json"))) == 2


def test_a_document_recorded_before_a_crash_is_not_recorded_twice(
    recipient: Recipient,
) -> None:
    data = os.urandom(MiB)
    recipient.deliver("d1", data)
    recipient.chunks(data)
    assert recipient.assembler.pump() == 1
    # killed between recording the document and dropping its assembly: put the row back
    recipient.deliver("d1-copy", data)
    with recipient.spool.transaction() as db:
        db.execute("UPDATE assemblies SET message_id = 'd1' WHERE message_id = 'd1-copy'")
    recipient.folder.hand_over_pending()
    assert recipient.assembler.pump() == 0
    assert recipient.assemblies() == []
    recipient.assembler.blobs.sweep()
    assert recipient.files("in") == []
    assert len(list(recipient.config.inbox_documents.glob("*.json"))) == 1


# -- abandoned transfers -------------------------------------------------------------------


def _refusal(sha: str, message_ids: list[str], sender: str = A) -> bytes:
    refusal = ChunkRefused(
        sender=sender,
        sha256=sha,
        message_ids=message_ids,
        reason="the transfer did not finish within 72 h; ask the sender to send it again",
    )
    return refusal.model_dump_json(by_alias=True).encode("utf-8")


def test_a_transfer_the_hub_gave_up_is_abandoned_its_parts_deleted_and_kept_on_record(
    recipient: Recipient,
) -> None:
    data = os.urandom(3 * MiB)
    sha = recipient.deliver("d1", data)
    recipient.assembler.pump()
    recipient.chunks(data, upto=MiB)
    assert recipient.files("parts") and recipient.part_rows() == 1
    refused = _refusal(sha, ["d1"])
    assert recipient.assembler.takes(TYPE_CHUNK_REFUSED, refused)
    with capture_logs() as logs:
        assert recipient.assembler.take("r1", TYPE_CHUNK_REFUSED, refused, {})
        assert recipient.assembler.take("r1", TYPE_CHUNK_REFUSED, refused, {})  # redelivered
    [(message_id, abandoned_at, reason)] = recipient.assemblies()
    assert message_id == "d1" and abandoned_at is not None
    assert isinstance(reason, str) and "did not finish within 72 h" in reason
    [said] = [e for e in logs if e["event"] == "inbox.assembly_abandoned"]
    assert said["log_level"] == "error" and said["document_id"] and "72 h" in said["reason"]
    recipient.assembler.pump()  # sweeps
    assert recipient.files("parts") == [] and recipient.part_rows() == 0
    recipient.chunks(data)  # chunks still on their way are not written
    assert recipient.files("parts") == [] and recipient.part_rows() == 0
    assert recipient.assembler.pump() == 0
    assert recipient.store.count_pending("document") == 0
    asked = [r for r in recipient.spool.unsent(1000) if r.message_type == "chunk_request"]
    recipient.assembler.pump()
    assert [r for r in recipient.spool.unsent(1000) if r.message_type == "chunk_request"] == asked


def test_a_refusal_for_another_senders_attachment_abandons_nothing(
    recipient: Recipient,
) -> None:
    data = os.urandom(MiB)
    sha = recipient.deliver("d1", data)
    recipient.assembler.take("r1", TYPE_CHUNK_REFUSED, _refusal(sha, [], sender=C), {})
    [(_, abandoned_at, _)] = recipient.assemblies()
    assert abandoned_at is None
    recipient.chunks(data)
    assert recipient.assembler.pump() == 1


def test_an_abandoned_document_delivered_again_is_assembled_again(
    recipient: Recipient,
) -> None:
    data = os.urandom(2 * MiB)
    sha = recipient.deliver("d1", data)
    recipient.assembler.take("r1", TYPE_CHUNK_REFUSED, _refusal(sha, ["d1"]), {})
    recipient.deliver("d1", data)  # an operator's resend at the hub: the same message id
    [(_, abandoned_at, _)] = recipient.assemblies()
    assert abandoned_at is None
    recipient.chunks(data)
    assert recipient.assembler.pump() == 1


def test_an_assembly_without_progress_for_assembly_timeout_hours_is_abandoned(
    tmp_path: Path,
) -> None:
    recipient = Recipient(tmp_path, assembly_timeout_hours=1.0)
    data = os.urandom(2 * MiB)
    recipient.deliver("d1", data)
    recipient.chunks(data, upto=MiB)
    recipient.assembler.pump()
    [(_, abandoned_at, _)] = recipient.assemblies()
    assert abandoned_at is None
    with recipient.spool.transaction() as db:  # the last chunk came 61 minutes ago
        past = time.time() - 61 * 60
        db.execute("UPDATE assemblies SET started_at = ?, chunk_at = ?", (past - 60, past))
    recipient.assembler.pump()
    [(_, abandoned_at, reason)] = recipient.assemblies()
    assert abandoned_at is not None and "assembly_timeout_hours" in str(reason)
    recipient.assembler.pump()
    assert recipient.files("parts") == [] and recipient.part_rows() == 0


def test_the_metrics_count_active_and_abandoned_assemblies(recipient: Recipient) -> None:
    collector = SpoolCollector(recipient.config, lambda: True)
    assert "lienthong_adapter_assemblies" not in {m.name for m in collector.collect()}
    data = os.urandom(MiB)
    sha = recipient.deliver("d1", data)
    recipient.deliver("d2", os.urandom(MiB))
    recipient.assembler.take("r1", TYPE_CHUNK_REFUSED, _refusal(sha, ["d1"]), {})
    [metric] = [m for m in collector.collect() if m.name == "lienthong_adapter_assemblies"]
    assert {s.labels["state"]: s.value for s in metric.samples} == {"active": 1, "abandoned": 1}


def test_a_receipt_is_decoded_once_to_be_recorded_and_to_free_its_attachment(
    sender: Sender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release reads the receipts the recorder already decoded, not their bodies again."""
    import adapters.inbox
    from schemas.envelope import decode_message

    decoded: list[str] = []
    real = decode_message

    def counting(body: bytes, *, expect: str | None = None) -> object:
        decoded.append(str(expect))
        return real(body, expect=expect)

    monkeypatch.setattr(adapters.inbox, "decode_message", counting)
    original = tmp_path / "scan.bin"
    random_file(original, 300 * 1024)
    message_id = sender.drop("9", original)
    assert sender.receipt(ReceiptKind.ACCEPTED, message_id) is Action.ACK
    assert decoded == [t.TYPE_RECEIPT]
    sender.sweep()
    assert sender.out() == []
