"""The relay and the adapters over TLS: a node of the test's own listens with
``deploy/rabbitmq/tls.conf`` (client certificates required) on port 5695, with a CA and
certificates the test makes (openssl); an agency's adapter sends a document through the relay
to another agency's adapter, every connection over TLS.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pika
import pika.exceptions
import pytest
from sqlalchemy import text

from relay.config import Settings
from relay.db.engine import make_engine
from relay.directory.service import add_agency
from relay.setup import run_setup
from schemas.envelope import encode_message
from tests.adapter_support import adapter_thread, drop, make_document, visible_files, wait_for
from tests.broker_node import Node, own_node
from tests.relay_support import RelayProcess
from tests.services import Services, random_code, unique_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TLS_PORT, AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = 5695, 5694, 15694, 25694


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path, clients: list[str]) -> None:
    """A CA, a server certificate for localhost/127.0.0.1 and one client certificate each."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=lienthong test CA", cwd=directory,
    )  # fmt: skip
    names = {"server": "DNS:localhost,IP:127.0.0.1", **{c: f"DNS:{c}" for c in clients}}
    for name, san in names.items():
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl(
            "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=directory,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext", cwd=directory,
        )  # fmt: skip


def tls_listener_config(certs: Path) -> str:
    """``deploy/rabbitmq/tls.conf`` with the test's port and certificate paths."""
    conf = (ROOT / "deploy" / "rabbitmq" / "tls.conf").read_text(encoding="utf-8")
    conf = conf.replace("listeners.ssl.default = 5671", f"listeners.ssl.default = {TLS_PORT}")
    conf = conf.replace("/etc/rabbitmq/tls/", f"{certs}/")
    assert f"listeners.ssl.default = {TLS_PORT}" in conf and str(certs) in conf
    return conf


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Path]]:
    work = tmp_path_factory.mktemp("tls")
    certs = work / "certs"
    make_certificates(certs, ["relay", "agency-a", "agency-b"])
    with own_node(
        work,
        name=f"lienthong-tls-{uuid.uuid4().hex[:6]}@localhost",
        amqp_port=AMQP_PORT,
        management_port=MANAGEMENT_PORT,
        dist_port=DIST_PORT,
        extra_config=tls_listener_config(certs),
    ) as node:
        yield node, certs


@pytest.fixture(scope="module")
def tls_settings(tls_node: tuple[Node, Path], services: Services) -> Iterator[Settings]:
    node, certs = tls_node
    database = unique_name("lienthong_tls")
    settings = Settings(
        amqp_url=f"amqps://guest:guest@localhost:{TLS_PORT}/lienthong-tls",
        database_url=services.database_url_for(database),
        management_url=node.management_url,
        tls_ca_file=str(certs / "ca.pem"),
        tls_cert_file=str(certs / "relay.pem"),
        tls_key_file=str(certs / "relay.key"),
        agency_poll_seconds=0.2,
        batch_wait_ms=5,
    )
    run_setup(settings)
    yield settings
    admin = make_engine(services.database_url_for("postgres"))
    try:
        with admin.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            )
    finally:
        admin.dispose()


def adapter_config(directory: Path, code: str, password: str, certs: Path, client: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "secret").write_text(password + "\n")
    path = directory / "adapter.toml"
    path.write_text(
        f'agency = "{code}"\n'
        f'amqp_url = "amqps://localhost:{TLS_PORT}/lienthong-tls"\n'
        'password_file = "secret"\n'
        'root = "root"\n'
        f'tls_ca_file = "{certs / "ca.pem"}"\n'
        f'tls_cert_file = "{certs / f"{client}.pem"}"\n'
        f'tls_key_file = "{certs / f"{client}.key"}"\n'
        "poll_seconds = 0.1\n"
        "reconnect_initial_seconds = 0.2\n"
        "reconnect_max_seconds = 1.0\n"
    )
    return path


def connections(node: Node) -> list[dict[str, object]]:
    found: list[dict[str, object]] = httpx.get(
        f"http://127.0.0.1:{node.management_port}/api/connections?columns=user,ssl,port",
        auth=("guest", "guest"),
        timeout=10,
    ).json()
    return found


def test_an_adapter_sends_a_document_to_another_over_tls_through_the_relay(
    tls_node: tuple[Node, Path], tls_settings: Settings, tmp_path: Path
) -> None:
    node, certs = tls_node
    a, b = random_code(), random_code()
    passwords = {}
    for code in (a, b):
        passwords[code] = uuid.uuid4().hex
        secret = tmp_path / f"{code}.secret"
        secret.write_text(passwords[code])
        add_agency(tls_settings, code, f"Cơ quan {code}", password_file=secret)
    config_a = adapter_config(tmp_path / "a", a, passwords[a], certs, "agency-a")
    config_b = adapter_config(tmp_path / "b", b, passwords[b], certs, "agency-b")
    document = make_document(a, [b])

    with (
        RelayProcess(tls_settings) as relay,
        adapter_thread(config_a) as adapter_a,
        adapter_thread(config_b) as adapter_b,
    ):
        relay.wait_consuming([a, b], timeout=60)
        wait_for(adapter_a.broker.connected.is_set, 60, "adapter A to connect")
        wait_for(adapter_b.broker.connected.is_set, 60, "adapter B to connect")
        drop(tmp_path / "a" / "root" / "outbox", "cv-1.json", encode_message(document))
        inbox_b = tmp_path / "b" / "root" / "inbox" / "documents"
        wait_for(lambda: len(visible_files(inbox_b)) == 1, 60, "the document in B's inbox")
        assert document.document_id.encode() in visible_files(inbox_b)[0].read_bytes()

        # Every connection of the relay and the adapters is a TLS one, on the TLS port (the
        # management API lists connections a few seconds late).
        deadline = time.monotonic() + 30
        while True:
            seen = {str(c["user"]): c for c in connections(node)}
            if {a, b, "guest"} <= set(seen):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(1)
        for c in connections(node):
            assert (c["ssl"], c["port"]) == (True, TLS_PORT), c


def test_the_tls_listener_refuses_a_client_without_a_certificate(
    tls_node: tuple[Node, Path], tls_settings: Settings
) -> None:
    _node, certs = tls_node
    without_cert = Settings(
        amqp_url=f"amqps://guest:guest@localhost:{TLS_PORT}/lienthong-tls",
        tls_ca_file=str(certs / "ca.pem"),
    )
    params = pika.URLParameters(without_cert.amqp_url)
    params.connection_attempts = 1
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params)


def test_sslmode_in_the_database_url_reaches_postgresql(services: Services) -> None:
    """The database URL goes to libpq as it is: ``sslmode=require`` against a server without
    TLS (the test's) is refused for that reason, ``sslmode=disable`` connects."""
    from relay.errors import ServiceUnavailable
    from relay.setup import ensure_database

    engine = make_engine(services.database_url_for("postgres"))
    try:
        with engine.connect() as conn:
            if conn.execute(text("SHOW ssl")).scalar_one() == "on":
                pytest.skip("this PostgreSQL has TLS on; the refusal cannot be shown")
    finally:
        engine.dispose()
    url = services.database_url_for("postgres")
    with pytest.raises(ServiceUnavailable) as refused:
        ensure_database(url + "?sslmode=require")
    assert "SSL" in str(refused.value)
    ensure_database(url + "?sslmode=disable")
