"""The adapter against the real broker, with the test playing the relay by hand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from adapters.broker import BrokerLoop
from adapters.config import load_config
from adapters.inbox import InboxRecorder
from adapters.received import ReceivedStore
from adapters.spool import Spool
from relay.broker.management import ManagementClient
from relay.config import Settings
from schemas import Status, decode_message
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import (
    Broker,
    TcpProxy,
    adapter_thread,
    agency_url,
    drop,
    make_document,
    provision,
    unwritable,
    visible_files,
    wait_for,
    write_config,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Documents dropped during the outage here (the e2e test drops 200 through the relay).
N = 50


@pytest.fixture(scope="module")
def adapter_env(env: Settings) -> Settings:
    """The run's shared environment (random agency codes keep tests apart; a vhost per module
    costs the shared broker more than it buys)."""
    return env


@pytest.fixture
def broker(adapter_env: Settings) -> Iterator[Broker]:
    with Broker(adapter_env) as b:
        yield b


def _agency(
    env: Settings, management: ManagementClient, tmp: Path, **extra: object
) -> tuple[str, Path]:
    code = random_code()
    password = provision(env, management, code)
    return code, write_config(tmp / code, code, agency_url(env), password, **extra)


def test_a_file_dropped_into_the_outbox_is_published_once_as_the_agency(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    a, config = _agency(adapter_env, management, tmp_path)
    b = random_code()
    root = config.parent / "root"
    document = make_document(a, [b])
    with adapter_thread(config):
        drop(root / "outbox", "cv-001.json", encode_message(document))
        wait_for(lambda: broker.count(t.outbox_queue(a)) == 1, 30, "the submission")
        wait_for(lambda: visible_files(root / "outbox" / "sent") != [], 5, "the file in sent/")
    [(props, body)] = broker.take(t.outbox_queue(a))
    assert props.user_id == a  # type: ignore[attr-defined]
    assert props.type == t.TYPE_DOCUMENT  # type: ignore[attr-defined]
    assert props.delivery_mode == 2  # type: ignore[attr-defined]
    assert props.content_type == t.CONTENT_TYPE  # type: ignore[attr-defined]
    assert props.message_id  # type: ignore[attr-defined]
    assert decode_message(body) == document
    assert [p.name for p in visible_files(root / "outbox" / "sent")] == ["cv-001.json"]
    assert visible_files(root / "outbox") == []


def test_documents_dropped_while_the_broker_is_unreachable_go_out_once_and_in_order(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    host = urlsplit(adapter_env.amqp_url)
    proxy = TcpProxy(host.hostname or "127.0.0.1", host.port or 5672)
    proxy.start()
    code = random_code()
    password = provision(adapter_env, management, code)
    config = write_config(
        tmp_path / code, code, agency_url(adapter_env, proxy.port), password, heartbeat_seconds=2
    )
    root = config.parent / "root"
    recipient = random_code()
    documents = [make_document(code, [recipient], f"{code},2026/11/24,{i:04d}") for i in range(N)]
    try:
        with capture_logs() as logs, adapter_thread(config) as adapter:
            connected = adapter.broker.connected
            wait_for(connected.is_set, 30, "the first connection")
            proxy.cut()
            wait_for(lambda: not connected.is_set(), 10, "the outage to be seen")
            for i, document in enumerate(documents):
                drop(root / "outbox", f"doc-{i:04d}.json", encode_message(document))
            wait_for(lambda: len(visible_files(root / "outbox" / "sent")) == N, 60, "all spooled")
            assert broker.count(t.outbox_queue(code)) == 0
            proxy.restore()
            wait_for(lambda: broker.count(t.outbox_queue(code)) >= N, 60, "all published")
    finally:
        proxy.close()
    received = broker.take(t.outbox_queue(code))
    ids = [decode_message(body).document_id for _, body in received]
    assert ids == [d.document_id for d in documents]  # all, once each, in order
    assert len({p.message_id for p, _ in received}) == N  # type: ignore[attr-defined]
    events = [e["event"] for e in logs]
    assert events.count("adapter.broker_down") == 1
    assert events.count("adapter.broker_back") == 1


def test_a_delivered_document_is_stored_once_and_answered_with_status_01(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    b, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    sender = random_code()
    document = make_document(sender, [b])
    with adapter_thread(config):
        mid = broker.deliver(b, document)
        wait_for(lambda: len(visible_files(root / "inbox" / "documents")) == 1, 10, "the file")
        broker.deliver(b, document, message_id=mid)  # a redelivered copy
        wait_for(lambda: broker.count(t.inbox_queue(b)) == 0, 10, "the copy acked")
        wait_for(lambda: broker.count(t.outbox_queue(b)) == 1, 10, "status 01")
    [stored] = visible_files(root / "inbox" / "documents")
    assert stored.name == f"{b}_{mid}.json"
    assert decode_message(stored.read_bytes()) == document
    [(props, body)] = broker.take(t.outbox_queue(b))
    status = decode_message(body)
    assert isinstance(status, Status)
    assert props.type == t.TYPE_STATUS  # type: ignore[attr-defined]
    assert status.status_code == "01"
    assert status.sender.organ_id == b
    assert status.response_for.organ_id == sender
    assert status.response_for.document_id == document.document_id


def test_a_delivery_that_cannot_be_read_is_rejected_back_to_the_relay(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    b, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    returned: list[str] = []

    def dead_lettered() -> bool:
        returned.extend(p.message_id for p, _ in broker.take(t.RETURNED_QUEUE))  # type: ignore[attr-defined]
        return mid in returned

    with adapter_thread(config) as adapter:
        wait_for(adapter.broker.connected.is_set, 30, "the connection")
        mid = broker.deliver(b, b'{"schema": "lienthong.document/1"}')
        wait_for(dead_lettered, 10, "the dead letter")
        assert broker.count(t.inbox_queue(b)) == 0
    dead_lettered()
    assert returned.count(mid) == 1  # rejected once, back to the relay, not acked
    assert visible_files(root / "inbox" / "documents") == []
    assert broker.count(t.outbox_queue(b)) == 0  # no status 01 for what was not stored


def test_a_document_waits_in_the_store_while_the_inbox_folder_cannot_be_written(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    b, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    document = make_document(random_code(), [b])
    with adapter_thread(config) as adapter:
        wait_for(adapter.broker.connected.is_set, 30, "the connection")
        with unwritable(root / "inbox" / "documents"):
            mid = broker.deliver(b, document)
            with Spool(root / "spool.sqlite3") as spool:
                store = ReceivedStore(spool)
                wait_for(lambda: store.count_pending() == 1, 10, "the delivery recorded")
            wait_for(lambda: broker.count(t.inbox_queue(b)) == 0, 10, "the delivery acked")
            time.sleep(1)
            assert broker.count(t.outbox_queue(b)) == 0  # no 01: the DMS does not have it
        wait_for(lambda: visible_files(root / "inbox" / "documents") != [], 10, "the file")
        wait_for(lambda: broker.count(t.outbox_queue(b)) == 1, 10, "status 01")
    bounced = [p.message_id for p, _ in broker.take(t.RETURNED_QUEUE)]  # type: ignore[attr-defined]
    assert mid not in bounced  # kept by the adapter, not sent back to the relay
    [stored] = visible_files(root / "inbox" / "documents")
    assert stored.name == f"{b}_{mid}.json"


def test_statuses_and_receipts_land_in_their_folders(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    a, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    from schemas import Receipt, ReceiptKind
    from tests.adapter_support import make_status

    status = make_status(random_code(), a, "X,2026/11/24,1/ABC", "03")
    receipt = Receipt(kind=ReceiptKind.ACCEPTED, in_reply_to="m-1", document_id="X")
    with adapter_thread(config):
        sid = broker.deliver(a, status, message_type=t.TYPE_STATUS)
        rid = broker.deliver(a, encode_message(receipt), message_type=t.TYPE_RECEIPT)
        wait_for(lambda: len(visible_files(root / "inbox" / "receipts")) == 1, 10, "receipt")
        wait_for(lambda: len(visible_files(root / "inbox" / "statuses")) == 1, 10, "status")
    assert (root / "inbox" / "statuses" / f"{a}_{sid}.json").exists()
    assert json.loads((root / "inbox" / "receipts" / f"{a}_{rid}.json").read_text())["kind"] == (
        "accepted"
    )
    assert broker.count(t.outbox_queue(a)) == 0  # statuses are not answered


def test_a_submission_the_broker_cannot_route_stays_spooled_until_it_can(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    from relay.broker.topology import declare_agency_queues

    a, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    management.delete_queue(adapter_env.vhost, t.outbox_queue(a))  # nowhere to route to
    document = make_document(a, [random_code()])
    with capture_logs() as logs, adapter_thread(config) as adapter:
        wait_for(adapter.broker.connected.is_set, 30, "the connection")
        drop(root / "outbox", "cv.json", encode_message(document))
        wait_for(
            lambda: any(e["event"] == "outbox.publish_refused" for e in logs), 30, "the refusal"
        )
        declare_agency_queues(management, adapter_env.vhost, a)
        wait_for(lambda: broker.count(t.outbox_queue(a)) == 1, 30, "the submission")
    [(_, body)] = broker.take(t.outbox_queue(a))
    assert decode_message(body) == document
    events = [e["event"] for e in logs]
    assert events.count("outbox.publish_refused") == 1  # once, not once per attempt
    assert "outbox.publish_resumed" in events


def test_adapter_send_spools_and_sends_one_file_and_knows_it_was_sent(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from adapters.cli import adapter as adapter_cli

    a, config = _agency(adapter_env, management, tmp_path)
    good = tmp_path / "cv.json"
    good.write_bytes(encode_message(make_document(a, [random_code()])))
    runner = CliRunner()
    send = ["send", "--config", str(config)]
    first = runner.invoke(adapter_cli, [*send, str(good), "--json"])
    assert first.exit_code == 0, first.output
    # Unconfigured structlog prints to stdout here; the CLI's own output is the last line.
    result = json.loads(first.stdout.splitlines()[-1])
    assert result["state"] == "sent"
    again = runner.invoke(adapter_cli, [*send, str(good)])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == result["message_id"]
    assert "already sent" in again.stderr
    [(props, _)] = broker.take(t.outbox_queue(a))
    assert props.message_id == result["message_id"]  # type: ignore[attr-defined]
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "lienthong.document/1", "document_id": ""}')
    refused = runner.invoke(adapter_cli, [*send, str(bad)])
    assert refused.exit_code == 1
    assert "document_id" in refused.stderr
    spooled_only = tmp_path / "later.json"
    spooled_only.write_bytes(encode_message(make_document(a, [random_code()])))
    later = runner.invoke(adapter_cli, [*send, str(spooled_only), "--no-publish", "--json"])
    assert later.exit_code == 0 and json.loads(later.stdout.splitlines()[-1])["state"] == "spooled"
    assert broker.count(t.outbox_queue(a)) == 0


@pytest.mark.hostile
def test_a_status_sent_with_a_documents_message_id_does_not_make_the_document_a_duplicate(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    # Issue 12, item 4: an agency that has seen a submission's id sends a status with the id
    # of the copy addressed to B; B's adapter must still hand the document over.
    from tests.adapter_support import make_status

    b, config = _agency(adapter_env, management, tmp_path)
    root = config.parent / "root"
    document = make_document(random_code(), [b])
    status = make_status(random_code(), b, document.document_id, "05")
    with adapter_thread(config):
        mid = broker.deliver(b, status, message_type=t.TYPE_STATUS)
        wait_for(lambda: len(visible_files(root / "inbox" / "statuses")) == 1, 10, "the status")
        broker.deliver(b, document, message_id=mid)
        wait_for(lambda: broker.count(t.inbox_queue(b)) == 0, 10, "the document acked")
        wait_for(lambda: visible_files(root / "inbox" / "documents") != [], 10, "the document")
    [stored] = visible_files(root / "inbox" / "documents")
    assert decode_message(stored.read_bytes()) == document


def test_items_wait_in_the_store_until_a_connector_takes_them_and_then_01_leaves(
    adapter_env: Settings, management: ManagementClient, broker: Broker, tmp_path: Path
) -> None:
    # The broker side alone, as with a connector other than the folder's (issue 15's SDK).
    b, config_path = _agency(adapter_env, management, tmp_path)
    config = load_config(config_path)
    config.ensure_folders()
    Spool(config.spool_path).close()  # created before the thread opens it, as the daemon does
    document = make_document(random_code(), [b])
    stop = threading.Event()
    loop = BrokerLoop(config, lambda spool: InboxRecorder(config, spool), stop)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(loop.connected.is_set, 30, "the connection")
        mid = broker.deliver(b, document)
        with Spool(config.spool_path) as spool:
            store = ReceivedStore(spool)
            wait_for(lambda: store.count_pending() == 1, 10, "the delivery recorded")
            [item] = store.pending(t.TYPE_DOCUMENT)
            assert (item.message_id, item.message()) == (mid, document)
            time.sleep(1)
            assert broker.count(t.outbox_queue(b)) == 0  # the DMS does not have it yet
            assert store.mark_taken(t.TYPE_DOCUMENT, mid, "sdk")
        wait_for(lambda: broker.count(t.outbox_queue(b)) == 1, 10, "status 01")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert visible_files(config.inbox_documents) == []
    [(_, body)] = broker.take(t.outbox_queue(b))
    status = decode_message(body)
    assert isinstance(status, Status) and status.status_code == "01"
