"""Fuzzing the SDK API over real HTTP: whatever the headers and bodies, a JSON answer with the
three fields, never a server error, and nothing taken without a valid signature.

The adapter's HTTP server runs alone (no broker is needed to answer); hypothesis draws header
sets (signed with the right secret or not, names in any case, unknown and repeated keys,
non-ASCII values) and bodies for every path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.config import load_config
from adapters.formats.registry import get_format
from adapters.spool import Spool
from adapters.vxp.app import ENDPOINTS
from adapters.vxp.server import SdkServer, SdkServerFailed
from tests.adapter_support import write_config
from tests.services import random_code

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SYSTEM = "dms-fuzz"
SECRET = "fuzz-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("vxp-fuzz")
    path = write_config(folder, random_code(), "amqp://127.0.0.1:1/x", "pw")
    (folder / "secret").write_text(SECRET)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with path.open("a") as f:
        f.write(
            f'\n[vxp]\nlisten = "127.0.0.1:{port}"\nsystemid = "{SYSTEM}"\nsecret_file = "secret"\n'
        )
    config = load_config(path)
    config.root.mkdir(parents=True, exist_ok=True)
    Spool(config.spool_path).close()
    sdk = SdkServer(config, get_format("edxml"))
    sdk.start()
    try:
        yield f"http://127.0.0.1:{port}", config.spool_path
    finally:
        sdk.stop()


param_names = st.sampled_from(
    ["docId", "docid", "DOCID", "status", "messagetype", "MessageType", "servicetype",
     "hash-file", "from", "to", "fromDate", "toDate", "pageSize", "pageIndex", "filePath",
     "timestamp", "x", "systemid"]
)  # fmt: skip
param_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["done", "fail", "processing", "edoc", "status", "1", "0", "-1", "", "{}",
                     "99999999999999999999999", "31/12/2026 23:59:59", '["000.00.00.H41"]']),
)  # fmt: skip


#: Loose (unsigned) header values as HTTP allows them: visible ASCII or UTF-8 bytes.
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, blacklist_categories=("Cs", "Cc")), max_size=20
).map(lambda v: v.encode("utf-8"))


def sign(params: dict[str, str], secret: str) -> list[tuple[str, bytes]]:
    signed = {"XroadVnpt-systemid": SYSTEM}
    signed.update({f"XroadVnpt-{k}": v for k, v in params.items()})
    text = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()
    mac = hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()
    return [("XroadVnpt-sign-header", text), ("XroadVnpt-hash-header", mac.encode())]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(sorted(ENDPOINTS)),
    method=st.sampled_from(["GET", "POST"]),
    params=st.dictionaries(param_names, param_values, max_size=8),
    secret=st.sampled_from([SECRET, SECRET, "wrong"]),
    loose=st.lists(st.tuples(st.sampled_from(["XroadVnpt-docId", "X-Other"]), header_values)),
    body=st.one_of(st.just(b""), st.just(b"{}"), st.binary(max_size=200)),
    content_type=st.sampled_from(
        ["application/json", "application/octet-stream", "text/plain", "multipart/form-data"]
    ),
)
def test_any_request_gets_a_json_answer_and_nothing_unsigned_is_taken(
    server: tuple[str, Path],
    path: str,
    method: str,
    params: dict[str, str],
    secret: str,
    loose: list[tuple[str, bytes]],
    body: bytes,
    content_type: str,
) -> None:
    base, spool_path = server
    headers = [*sign(params, secret), *loose, ("Content-Type", content_type.encode())]
    before = _spooled(spool_path)
    response = httpx.request(method, base + path, headers=headers, content=body, timeout=30)
    assert response.status_code in (200, 503), response.text
    if path == "/downloadEdoc" and response.headers["content-type"] == "application/xml":
        return
    answer = response.json()
    assert {"status", "ErrorCode", "ErrorDesc"} <= set(answer)
    assert all(isinstance(answer[k], str) for k in ("status", "ErrorCode", "ErrorDesc"))
    if answer["status"] == "FAIL":
        assert answer["ErrorCode"] != "0" and answer["ErrorDesc"]
    if secret != SECRET:
        assert answer["status"] == "FAIL" and answer["ErrorCode"] == "401"
        assert _spooled(spool_path) == before


def _spooled(spool_path: Path) -> int:
    with sqlite3.connect(spool_path) as db:
        return int(db.execute("SELECT count(*) FROM outgoing").fetchone()[0])


def test_a_listen_address_in_use_stops_the_adapter_saying_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = write_config(tmp_path, random_code(), "amqp://127.0.0.1:1/x", "pw")
        (tmp_path / "secret").write_text(SECRET)
        with path.open("a") as f:
            f.write(
                f'\n[vxp]\nlisten = "127.0.0.1:{port}"\nsystemid = "{SYSTEM}"\n'
                'secret_file = "secret"\n'
            )
        config = load_config(path)
        config.root.mkdir(parents=True, exist_ok=True)
        sdk = SdkServer(config, get_format("edxml"))
        with pytest.raises(SdkServerFailed, match=f"vxp.listen: cannot serve .*127.0.0.1:{port}"):
            sdk.start()
