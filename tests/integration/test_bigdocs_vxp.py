"""The SDK API streams large packages (issue 17): ``sendEdoc`` of a package above
``chunk_threshold_bytes`` is read from disk and its attachments spooled as chunks, and
``getEdoc`` / ``downloadEdoc`` of a document whose attachments came in chunks stream the
package assembled from disk. Over real HTTP against a running adapter daemon (RabbitMQ
unreachable: nothing here needs it); the threshold is set small so that a few hundred KiB
take the large path.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.config import AdapterConfig, load_config
from adapters.edxml import parse_document
from adapters.inbox import Action, Delivery
from adapters.spool import Spool
from adapters.vxp.inbox import DirectoryAwareRecorder
from schemas import Attachment, Document, Organization
from schemas import topology as t
from schemas.chunks import TYPE_CHUNK, ChunkHeader, encode_chunk
from schemas.envelope import encode_message
from tests.adapter_support import adapter_thread, wait_for, write_config
from tests.bigdocs_support import random_file, write_package
from tests.integration.test_vxp_api import PREFIX, SECRET, SYSTEM, free_port
from tests.services import random_code
from tests.vxp_client import SdkClient, sdk_hex

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KiB = 1024
MiB = 1024 * KiB
THRESHOLD = 64 * KiB


class Site:
    def __init__(self, tmp: Path, daemons: contextlib.ExitStack, **extra: object) -> None:
        self.tmp = tmp
        self.code = random_code()
        dead = free_port()  # RabbitMQ is "down" for the whole test
        config_path = write_config(
            tmp,
            self.code,
            f"amqp://127.0.0.1:{dead}/x",
            "pw",
            chunk_threshold_bytes=THRESHOLD,
            max_file_bytes=128 * KiB,  # the single-message limit is below the packages here
            **extra,
        )
        port = free_port()
        (tmp / "vxp.secret").write_text(SECRET + "\n", encoding="utf-8")
        with config_path.open("a", encoding="utf-8") as f:
            f.write(
                f'\n[vxp]\nlisten = "127.0.0.1:{port}"\npath_prefix = "{PREFIX}"\n'
                f'systemid = "{SYSTEM}"\nsecret_file = "vxp.secret"\n'
            )
        self.config: AdapterConfig = load_config(config_path)
        self.base_url = f"http://127.0.0.1:{port}{PREFIX}"
        daemons.enter_context(adapter_thread(config_path))

        def up() -> bool:
            try:
                return httpx.get(f"{self.base_url}/openapi.json").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "the SDK API")

    def client(self) -> SdkClient:
        return SdkClient(self.base_url, SYSTEM, SECRET)

    def rows(self) -> list[tuple[str, str, bytes]]:
        with Spool(self.config.spool_path) as spool:
            found = spool.read("SELECT message_id, message_type, body FROM outgoing ORDER BY seq")
        rows = []
        for message_id, kind, body in found:
            assert isinstance(message_id, str) and isinstance(kind, str)
            assert isinstance(body, bytes)
            rows.append((message_id, kind, body))
        return rows

    def blobs(self, folder: str) -> list[str]:
        path = self.config.blobs_dir / folder
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with contextlib.ExitStack() as daemons:
        yield Site(tmp_path, daemons)


def test_a_large_send_edoc_is_spooled_as_chunks_from_disk_and_never_twice(
    site: Site, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.bin"
    digest = random_file(scan, 300 * KiB)
    path = tmp_path / "package.edxml"
    write_package(path, scan, sender=site.code, recipients=[random_code()], number="17")
    package = path.read_bytes()
    assert len(package) > site.config.max_file_bytes  # refused whole before issue 17's path
    client = site.client()
    first = client.send_edoc(package, sender=site.code)
    assert first["status"] == "OK", first
    rows = site.rows()
    assert [k for _, k, _ in rows] == [TYPE_CHUNK, "document"]
    [(_, _, chunk), (doc_id, _, body)] = rows
    assert doc_id == first["DocId"]
    assert json.loads(chunk) == {
        "sha256": digest,
        "size": 300 * KiB,
        "offset": 0,
        "length": 300 * KiB,
    }
    [attachment] = json.loads(body)["attachments"]
    assert attachment["transfer"] == "chunks" and attachment["data"] == ""
    assert len(body) < 16 * KiB  # the document travels without its attachment's bytes
    assert site.blobs("out") == [digest]
    assert (site.config.blobs_dir / "out" / digest).read_bytes() == scan.read_bytes()
    # The SDK's retries, in each form clients of the axis use: the same DocId, spooled once.
    assert client.send_edoc(package)["DocId"] == first["DocId"]
    assert client.send_edoc(package, form="multipart")["DocId"] == first["DocId"]
    assert client.send_edoc(package, form="base64")["DocId"] == first["DocId"]
    assert len(site.rows()) == 2
    # No upload is left behind in .lienthong-blobs/.
    assert [p.name for p in site.config.blobs_dir.iterdir() if p.name.startswith(".")] == []


def test_a_large_send_edoc_that_does_not_match_its_hash_or_limit_is_refused(
    site: Site, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.bin"
    random_file(scan, 200 * KiB)
    path = tmp_path / "package.edxml"
    write_package(path, scan, sender=site.code, recipients=[random_code()], number="18")
    package = path.read_bytes()
    client = site.client()
    cut = client.send_edoc(package[: len(package) // 2], hash_file=sdk_hex(package))
    assert cut["ErrorCode"] == "409" and "is not the SHA-256" in cut["ErrorDesc"]
    broken = package.replace(b"<edXML:Subject>", b"<edXML:Subject><x>", 1)
    bad = client.send_edoc(broken)
    assert bad["ErrorCode"] == "400" and "not a valid edXML package" in bad["ErrorDesc"]
    foreign = random_code()
    write_package(path, scan, sender=foreign, recipients=[site.code], number="19")
    refused = client.send_edoc(path.read_bytes())
    assert refused["ErrorCode"] == "403" and foreign in refused["ErrorDesc"]
    assert site.rows() == [] and site.blobs("out") == []


def _chunked_delivery(sender: str, addressee: str, data: bytes) -> Delivery:
    document = Document(
        document_id=f"{sender},2026/11/30,{uuid.uuid4().hex[:6]}/UBND",
        sender=Organization(organ_id=sender, organ_name="Bộ gửi"),
        recipients=[Organization(organ_id=addressee)],
        subject="Hồ sơ quét dung lượng lớn",
        attachments=[
            Attachment(
                name="ho-so.pdf",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                data="",
                transfer="chunks",
            )
        ],
    )
    return Delivery(
        message_id=str(uuid.uuid4()),
        message_type=t.TYPE_DOCUMENT,
        body=encode_message(document),
        headers={t.HEADER_RECIPIENT: addressee, t.HEADER_SENDER: sender},
    )


def test_get_edoc_and_download_edoc_stream_a_document_assembled_from_chunks(
    site: Site,
) -> None:
    sender = random_code()
    data = os.urandom(MiB + 4321)
    sha = hashlib.sha256(data).hexdigest()
    chunks = [
        Delivery(
            message_id=f"c{o}",
            message_type=TYPE_CHUNK,
            body=encode_chunk(
                ChunkHeader(
                    sha256=sha,
                    size=len(data),
                    offset=o,
                    length=len(data[o : o + MiB]),
                    sender=sender,
                ),
                data[o : o + MiB],
            ),
        )
        for o in range(0, len(data), MiB)
    ]
    with Spool(site.config.spool_path) as spool:  # what the broker loop does with deliveries
        recorder = DirectoryAwareRecorder(site.config, spool)
        assert recorder.handle_batch([_chunked_delivery(sender, site.code, data)]) == [Action.ACK]
        assert recorder.handle_batch(chunks) == [Action.ACK] * len(chunks)
        recorder.tick()
    client = site.client()
    [listed] = client.received()["data"]
    downloaded = client.download(listed["docId"])
    [attachment] = parse_document(downloaded).attachments
    assert attachment.content() == data
    answer = client.get_edoc(listed["docId"])
    assert answer["status"] == "OK" and answer["ErrorCode"] == "0"
    assert base64.b64decode(answer["data"]) == downloaded
    # the download's temporary file is deleted once its response is sent, which the client
    # can see before the server has done it
    deadline = time.monotonic() + 5
    while left := [p.name for p in site.config.blobs_dir.iterdir() if p.name.startswith(".")]:
        assert time.monotonic() < deadline, f"temporary files left: {left}"
        time.sleep(0.02)
    # Acked done: the adapter lets the bytes go, and says so if the DMS asks again.
    assert client.update_status(listed["docId"], "done")["status"] == "OK"
    with Spool(site.config.spool_path) as spool:
        DirectoryAwareRecorder(site.config, spool).tick()  # the first round sweeps
    assert site.blobs("in") == []
    gone = client.get_edoc(listed["docId"])
    assert gone["status"] == "FAIL" and "no longer kept" in gone["ErrorDesc"]


def test_a_package_over_max_package_bytes_is_refused_whether_its_size_is_declared_or_not(
    tmp_path: Path,
) -> None:
    with contextlib.ExitStack() as daemons:
        site = Site(tmp_path / "site", daemons, max_package_bytes=512 * KiB)
        scan = tmp_path / "scan.bin"
        random_file(scan, 400 * KiB)  # 530 KiB of base64 in the package
        path = tmp_path / "package.edxml"
        write_package(path, scan, sender=site.code, recipients=[random_code()], number="20")
        package = path.read_bytes()
        client = site.client()
        declared = client.send_edoc(package)  # Content-Length says it all
        assert declared["ErrorCode"] == "413" and "max_package_bytes" in declared["ErrorDesc"]

        def pieces() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
            for at in range(0, len(package), 64 * KiB):
                yield package[at : at + 64 * KiB]

        headers, _ = client.signed_headers("application/octet-stream")
        answer = httpx.post(
            f"{site.base_url}/sendEdoc", headers=headers, content=pieces(), timeout=60
        ).json()
        assert answer["ErrorCode"] == "413" and "max_package_bytes" in answer["ErrorDesc"]
        assert site.rows() == []
        assert [p.name for p in site.config.blobs_dir.iterdir() if p.name.startswith(".")] == []
