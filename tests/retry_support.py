"""Helpers for the retry tests: agencies, documents written as the relay would, a fake adapter.

The fake adapter consumes an agency's inbox with the agency's own credentials and rejects
(``requeue=False``) what it is told to, so RabbitMQ dead-letters it to ``lienthong.returned``
exactly as it would for a real adapter that cannot store a delivery.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
from sqlalchemy import Engine, func, insert, select, update

from relay.broker.management import ManagementClient
from relay.broker.topology import provision_agency
from relay.config import Settings
from relay.db.tables import agencies, deliveries, documents, events
from relay.domain.outgoing import delivery, delivery_message_id
from relay.retry import amqp
from relay.retry.worker import RetryWorker
from relay.worker.main import build_retry_engine
from schemas import Document, Receipt, Status, decode_message, encode_message, split_receipts
from schemas import topology as t
from tests.services import random_code


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass(frozen=True)
class Agency:
    code: str
    password: str

    def amqp_url(self, settings: Settings) -> str:
        parts = urlsplit(settings.amqp_url)
        netloc = f"{quote(self.code, safe='')}:{quote(self.password, safe='')}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def add_agency(settings: Settings, engine: Engine, mgmt: ManagementClient) -> Agency:
    code = random_code()
    password = secrets.token_urlsafe(16)
    with engine.begin() as conn:
        conn.execute(insert(agencies).values(code=code, name=f"Test {code}", strict_code=True))
    provision_agency(mgmt, settings.vhost, code, password)
    return Agency(code, password)


@dataclass(frozen=True)
class Sent:
    document_id: str
    submission_id: str
    delivery_message_id: str


def submit(engine: Engine, settings: Settings, sender: str, recipient: str) -> Sent:
    """Record a document as the relay does and publish its copy to the recipient's inbox."""
    return submit_many(engine, settings, sender, recipient, 1)[0]


def submit_many(
    engine: Engine, settings: Settings, sender: str, recipient: str, n: int
) -> list[Sent]:
    """``n`` documents from ``sender`` to ``recipient``: rows as the relay writes them, then
    each copy published (confirmed) and its delivery marked ``queued``."""
    sent: list[Sent] = []
    payloads: dict[str, bytes] = {}
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for _ in range(n):
            submission_id = str(uuid.uuid4())
            document_id = f"{sender},2026/11/24,{secrets.token_hex(4)}/TEST"
            payload = b'{"schema": "lienthong.document/1", "test": "%s"}' % document_id.encode()
            mid = delivery_message_id(submission_id, recipient, by=sender)
            pk = conn.execute(
                insert(documents)
                .values(
                    message_id=submission_id,
                    document_id=document_id,
                    business_type=0,
                    sender=sender,
                    submitted_by=sender,
                    subject="Công văn thử nghiệm",
                    payload=payload,
                )
                .returning(documents.c.id)
            ).scalar_one()
            ids[mid] = conn.execute(
                insert(deliveries)
                .values(document_pk=pk, recipient=recipient, route_to=recipient, message_id=mid)
                .returning(deliveries.c.id)
            ).scalar_one()
            payloads[mid] = payload
            sent.append(Sent(document_id, submission_id, mid))
    conn_amqp = amqp.connect(settings.amqp_url, name="test relay")
    try:
        ch = amqp.open_confirm_channel(conn_amqp)
        for s in sent:
            amqp.publish(
                ch,
                delivery(
                    submission_id=s.submission_id,
                    sender=sender,
                    recipient=recipient,
                    route_to=recipient,
                    message_type=t.TYPE_DOCUMENT,
                    body=payloads[s.delivery_message_id],
                ),
            )
    finally:
        conn_amqp.close()
    with engine.begin() as conn:
        for s in sent:
            did = ids[s.delivery_message_id]
            # As the relay does: pending -> queued only, a return may have overtaken the confirm.
            moved = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == did, deliveries.c.state == "pending")
                .values(state="queued", updated_at=func.now())
            ).rowcount
            if moved:
                conn.execute(
                    insert(events).values(
                        document_pk=select(deliveries.c.document_pk)
                        .where(deliveries.c.id == did)
                        .scalar_subquery(),
                        delivery_id=did,
                        kind="queued",
                        actor=recipient,
                    )
                )
    return sent


def delivery_row(engine: Engine, message_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.message_id == message_id)).one()
    return dict(row._mapping)


@dataclass
class FakeAdapter:
    """Consumes ``agency``'s inbox in a thread; ``accept(message_id, n)`` decides each copy.

    ``n`` is how many copies of that message id it has seen, this one included. An accepted
    document is marked ``delivered`` in the database, as the relay does on the adapter's 01;
    with ``report_01`` it publishes status 01 instead, as a real adapter does, for the relay.
    """

    settings: Settings
    engine: Engine
    agency: Agency
    accept: Callable[[str, int], bool]
    report_01: bool = False
    seen: dict[str, int] = field(default_factory=dict)
    acked: list[str] = field(default_factory=list)
    rejected: list[tuple[str, float]] = field(default_factory=list)
    received_at: dict[str, list[float]] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    others: list[bytes] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> FakeAdapter:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "fake adapter did not connect"
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.agency.amqp_url(self.settings)))
            ch = conn.channel()
            ch.basic_qos(prefetch_count=200)
            ch.basic_consume(t.inbox_queue(self.agency.code), self._on_message)
            ready.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except BaseException as e:  # surfaced by the test through .error
            self.error = e
            ready.set()

    def _report_01(
        self, channel: pika.adapters.blocking_connection.BlockingChannel, body: bytes
    ) -> None:
        channel.basic_publish(
            t.submit_exchange(self.agency.code),
            t.submit_routing_key(self.agency.code),
            _status_01(self.agency.code, body),
            pika.BasicProperties(
                content_type=t.CONTENT_TYPE,
                delivery_mode=2,
                message_id=str(uuid.uuid4()),
                type=t.TYPE_STATUS,
                user_id=self.agency.code,
            ),
        )

    def _on_message(
        self,
        ch: object,
        method: pika.spec.Basic.Deliver,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        mid = props.message_id
        assert isinstance(mid, str)
        now = time.monotonic()
        channel = method_channel(ch)
        if props.type != t.TYPE_DOCUMENT:  # receipts for its own statuses
            channel.basic_ack(method.delivery_tag)
            self.others.append(body)
            return
        n = self.seen.get(mid, 0) + 1
        self.seen[mid] = n
        self.received_at.setdefault(mid, []).append(now)
        if self.accept(mid, n):
            if self.report_01:
                self._report_01(channel, body)
            else:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.message_id == mid)
                        .values(state="delivered", updated_at=func.now())
                    )
            channel.basic_ack(method.delivery_tag)
            self.acked.append(mid)
            self.bodies.append(body)
        else:
            channel.basic_reject(method.delivery_tag, requeue=False)
            self.rejected.append((mid, now))


STAFF = "Trần Thị Bình"


def _status_01(me: str, document_body: bytes) -> bytes:
    doc = decode_message(document_body, expect=t.TYPE_DOCUMENT)
    assert isinstance(doc, Document)
    status = Status.model_validate(
        {
            "sender": {"organ_id": me},
            "response_for": {"organ_id": doc.sender.organ_id, "document_id": doc.document_id},
            "staff_info": {"staff": STAFF},
            "status_code": "01",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
    )
    return encode_message(status)


def method_channel(ch: object) -> pika.adapters.blocking_connection.BlockingChannel:
    assert isinstance(ch, pika.adapters.blocking_connection.BlockingChannel)
    return ch


@contextlib.contextmanager
def running_adapter(adapter: FakeAdapter) -> Iterator[FakeAdapter]:
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()
    if adapter.error is not None:
        raise adapter.error


@contextlib.contextmanager
def retry_worker(settings: Settings) -> Iterator[RetryWorker]:
    engine = build_retry_engine(settings)
    worker = RetryWorker(settings, engine)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(15)
        engine.dispose()
        assert not thread.is_alive(), "the retry worker did not stop"


def drain(settings: Settings, agency: Agency, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    """(message type, body) of everything now in ``agency``'s inbox, acked."""
    conn = pika.BlockingConnection(pika.URLParameters(agency.amqp_url(settings)))
    out: list[tuple[str, bytes]] = []
    try:
        ch = conn.channel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(t.inbox_queue(agency.code))
            if method is None:
                break
            out.append((props.type, body))
            ch.basic_ack(method.delivery_tag)
    finally:
        conn.close()
    return out


def event_kinds(engine: Engine, message_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(events.c.kind)
                .join(deliveries, deliveries.c.id == events.c.delivery_id)
                .where(deliveries.c.message_id == message_id)
                .order_by(events.c.id)
            ).scalars()
        )


FAST: dict[str, object] = {
    "retry_base_seconds": 0.2,
    "retry_max_seconds": 1.0,
    "retry_max_attempts": 3,
    "destination_down_after": 5,
    "destination_probe_seconds": 1.0,
    "retry_tick_seconds": 0.1,
}


def cli_env(settings: Settings) -> dict[str, str | None]:
    return {
        "LIENTHONG_AMQP_URL": settings.amqp_url,
        "LIENTHONG_DATABASE_URL": settings.database_url,
        "LIENTHONG_MANAGEMENT_URL": settings.management_url,
    }


def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from lienthong.cli import cli

    result = CliRunner().invoke(cli, ["--log-level", "error", *args], env=cli_env(settings))
    return result.exit_code, result.output


def time_passes(engine: Engine, route_to: str) -> int:
    """While the relay is stopped, the time of every retry to ``route_to`` comes."""
    with engine.begin() as conn:
        n: int = conn.execute(
            update(deliveries)
            .where(deliveries.c.route_to == route_to, deliveries.c.state == "retrying")
            .values(next_attempt_at=func.now())
        ).rowcount
    return n


def publish_returns(amqp_url: str, message_ids: list[str], recipient: str) -> None:
    """Copies ``recipient``'s adapter rejected, as RabbitMQ dead-letters them to the relay."""
    conn = amqp.connect(amqp_url, name="test returns")
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for mid in message_ids:
            ch.basic_publish(
                t.RETURNED_EXCHANGE,
                "",
                b"{}",
                pika.BasicProperties(
                    message_id=mid,
                    type=t.TYPE_DOCUMENT,
                    headers={
                        "x-first-death-reason": "rejected",
                        "x-first-death-queue": t.inbox_queue(recipient),
                    },
                ),
            )
    finally:
        conn.close()


def inbox_receipts(
    settings: Settings, agency: Agency, timeout: float = 1.0
) -> list[tuple[str, list[Receipt]]]:
    """Each message in ``agency``'s inbox: its type and the receipts it carries (one, or a
    ``receipts`` group's)."""
    found: list[tuple[str, list[Receipt]]] = []
    for kind, body in drain(settings, agency, timeout=timeout):
        if kind == t.TYPE_RECEIPTS:
            found.append((kind, split_receipts(body)))
        else:
            one = decode_message(body, expect=t.TYPE_RECEIPT)
            assert isinstance(one, Receipt)
            found.append((kind, [one]))
    return found
