"""Adapters as real processes (``lienthong adapter run``), with the relay where it is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine

from relay.config import Settings
from schemas import Receipt, Status, decode_message
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import (
    AdapterProcess,
    Broker,
    TcpProxy,
    agency_url,
    drop,
    make_document,
    visible_files,
    wait_for,
    write_config,
)
from tests.relay_support import RelayProcess, add_agency
from tests.services import random_code

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def e2e_env(env: Settings) -> Settings:
    """The run's shared environment; random agency codes keep tests apart."""
    return env


@pytest.fixture(scope="module")
def e2e_engine(engine: Engine) -> Engine:
    return engine


@pytest.fixture
def processes() -> Iterator[list[AdapterProcess]]:
    started: list[AdapterProcess] = []
    yield started
    for p in started:
        p.stop()


def _adapter(
    env: Settings,
    tmp: Path,
    code: str,
    password: str,
    started: list[AdapterProcess],
    **extra: object,
) -> tuple[AdapterProcess, Path]:
    port = extra.pop("port", None)
    config = write_config(tmp / code, code, agency_url(env, port), password, **extra)  # type: ignore[arg-type]
    proc = AdapterProcess(config, tmp / f"{code}.log").start()
    started.append(proc)
    return proc, config.parent / "root"


def test_a_dropped_document_reaches_b_once_and_a_gets_status_01_and_the_receipt(
    e2e_env: Settings, e2e_engine: Engine, tmp_path: Path, processes: list[AdapterProcess]
) -> None:
    a = add_agency(e2e_env, e2e_engine, random_code())
    b = add_agency(e2e_env, e2e_engine, random_code())
    assert a.password and b.password
    with RelayProcess(e2e_env) as relay:
        relay.wait_consuming([a.code, b.code])
        _, root_a = _adapter(e2e_env, tmp_path, a.code, a.password, processes)
        _, root_b = _adapter(e2e_env, tmp_path, b.code, b.password, processes)
        document = make_document(a.code, [b.code])
        drop(root_a / "outbox", "cong-van.json", encode_message(document))
        wait_for(lambda: visible_files(root_b / "inbox" / "documents") != [], 30, "B's file")
        wait_for(lambda: visible_files(root_a / "inbox" / "statuses") != [], 30, "status 01")
        wait_for(lambda: visible_files(root_a / "inbox" / "receipts") != [], 30, "receipt")
    [delivered] = visible_files(root_b / "inbox" / "documents")
    assert decode_message(delivered.read_bytes()).document_id == document.document_id
    [status_file] = visible_files(root_a / "inbox" / "statuses")
    status = decode_message(status_file.read_bytes())
    assert isinstance(status, Status)
    assert (status.status_code, status.sender.organ_id) == ("01", b.code)
    assert status.response_for.document_id == document.document_id
    receipts = [
        decode_message(p.read_bytes()) for p in visible_files(root_a / "inbox" / "receipts")
    ]
    assert any(isinstance(r, Receipt) and r.kind == "accepted" for r in receipts)
    assert [p.name for p in visible_files(root_a / "outbox" / "sent")] == ["cong-van.json"]


def test_200_documents_dropped_while_a_is_cut_off_arrive_at_b_exactly_once(
    e2e_env: Settings, e2e_engine: Engine, tmp_path: Path, processes: list[AdapterProcess]
) -> None:
    a = add_agency(e2e_env, e2e_engine, random_code())
    b = add_agency(e2e_env, e2e_engine, random_code())
    assert a.password and b.password
    target = urlsplit(e2e_env.amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    proxy.start()
    try:
        with RelayProcess(e2e_env) as relay:
            relay.wait_consuming([a.code, b.code])
            proc_a, root_a = _adapter(
                e2e_env, tmp_path, a.code, a.password, processes, port=proxy.port
            )
            _, root_b = _adapter(e2e_env, tmp_path, b.code, b.password, processes)
            wait_for(lambda: '"adapter.connected"' in proc_a.log_text(), 30, "A connected")
            proxy.cut()
            wait_for(lambda: '"adapter.broker_down"' in proc_a.log_text(), 30, "A's outage")
            ids = [f"{a.code},2026/11/24,{i:03d}/VP" for i in range(200)]
            for i, doc_id in enumerate(ids):
                drop(
                    root_a / "outbox",
                    f"vb-{i:03d}.json",
                    encode_message(make_document(a.code, [b.code], doc_id)),
                )
            wait_for(lambda: len(visible_files(root_a / "outbox" / "sent")) == 200, 60, "spooled")
            assert visible_files(root_b / "inbox" / "documents") == []
            proxy.restore()
            inbox_b = root_b / "inbox" / "documents"
            wait_for(lambda: len(visible_files(inbox_b)) >= 200, 90, "200 files at B")
            wait_for(lambda: '"adapter.broker_back"' in proc_a.log_text(), 10, "A is back")
            with Broker(e2e_env) as broker:
                wait_for(lambda: broker.count(t.inbox_queue(b.code)) == 0, 30, "B's inbox empty")
            log = proc_a.log_text()  # before the proxy closes, which is another outage
    finally:
        proxy.close()
    files = visible_files(root_b / "inbox" / "documents")
    got = sorted(str(decode_message(p.read_bytes()).document_id) for p in files)
    assert got == sorted(ids)  # every one, exactly once
    assert log.count('"adapter.broker_down"') == 1
    assert log.count('"adapter.broker_back"') == 1


def test_killing_b_while_it_receives_500_documents_leaves_exactly_500_files(
    e2e_env: Settings, e2e_engine: Engine, tmp_path: Path, processes: list[AdapterProcess]
) -> None:
    b = add_agency(e2e_env, e2e_engine, random_code())
    assert b.password
    sender = random_code()
    with Broker(e2e_env) as broker:  # the test plays the relay: 500 deliveries in B's inbox
        ids = broker.deliver_many(b.code, [make_document(sender, [b.code]) for _ in range(500)])
        proc, root = _adapter(e2e_env, tmp_path, b.code, b.password, processes)
        inbox = root / "inbox" / "documents"
        wait_for(lambda: len(visible_files(inbox)) >= 50, 60, "B under way", interval=0.01)
        proc.kill()
        at_kill = len(visible_files(inbox))
        print(f"B had stored {at_kill} of 500 files when it was killed")
        assert at_kill < 500, "B finished before it was killed; nothing was tested"
        proc.start()
        wait_for(lambda: len(visible_files(inbox)) >= 500, 90, "500 files")
        wait_for(lambda: broker.count(t.inbox_queue(b.code)) == 0, 30, "B's inbox empty")
        wait_for(lambda: broker.count(t.outbox_queue(b.code)) >= 500, 30, "500 statuses 01")
        assert proc.stop() == 0  # SIGTERM stops it cleanly
        assert sorted(p.name for p in visible_files(inbox)) == sorted(
            f"{b.code}_{i}.json" for i in ids
        )
        assert [p for p in inbox.iterdir() if p.name.startswith(".")] == []
        replies = {props.message_id for props, _ in broker.take(t.outbox_queue(b.code))}  # type: ignore[attr-defined]
        assert len(replies) == 500  # one status 01 per document (copies share their id)
