"""Hostile edXML dropped into an adapter's outbox lands in ``outbox/rejected/`` with the reason.

Runs the adapter's real outbox scanner and spool on a temporary folder; no broker is needed
because nothing here may be sent.
"""

from __future__ import annotations

import base64
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.config import AdapterConfig
from adapters.outbox import OutboxScanner
from adapters.spool import Spool

pytestmark = pytest.mark.e2e

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "edxml" / "document_new.edxml"
).read_bytes()


def _attachment_text(text: bytes) -> bytes:
    start = SAMPLE.index(b">", SAMPLE.index(b"<edXML:ContentTransferEncoded")) + 1
    end = SAMPLE.index(b"</edXML:ContentTransferEncoded>")
    return SAMPLE[:start] + text + SAMPLE[end:]


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.pdf", b"\0" * (8 * 1024 * 1024))
    return _attachment_text(base64.b64encode(buffer.getvalue()))


def _without_manifest_entry() -> bytes:
    start = SAMPLE.index(b"<edXML:Reference>")
    end = SAMPLE.index(b"</edXML:Reference>") + len(b"</edXML:Reference>")
    return SAMPLE[:start] + SAMPLE[end:]


HOSTILE = {
    "entities": (
        b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><edXML>&b;</edXML>',
        "DOCTYPE",
    ),
    "external-entity": (
        b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<edXML>&e;</edXML>",
        "external entities",
    ),
    "deep": (b"<edXML>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</edXML>", "nested too deep"),
    "zip-bomb": (_bomb(), "zip bomb"),
    "no-manifest-entry": (_without_manifest_entry(), "no edXMLManifest Reference"),
    "bad-base64": (_attachment_text(b"@@@ not base64 @@@"), "not valid base64"),
}


@pytest.fixture()
def scanner(tmp_path: Path) -> Iterator[OutboxScanner]:
    config = AdapterConfig(
        agency="000.00.00.G22", amqp_url="amqp://127.0.0.1:5672/unused", root=tmp_path
    )
    config.outbox.mkdir(parents=True)
    config.ensure_folders()
    with Spool(config.spool_path) as spool:
        yield OutboxScanner(config, spool)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_edxml_file_is_rejected_with_an_explanation(
    scanner: OutboxScanner, case: str
) -> None:
    data, reason = HOSTILE[case]
    (scanner.config.outbox / f"{case}.edxml").write_bytes(data)
    started = time.perf_counter()
    [taken] = scanner.scan_once()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert taken.entry is None
    rejected = scanner.config.rejected_dir / f"{case}.edxml"
    assert rejected.read_bytes() == data
    explanation = (scanner.config.rejected_dir / f"{case}.edxml.error.txt").read_text()
    assert reason in explanation
    assert "edXML" in explanation
    assert scanner.spool.count_unsent() == 0
