"""Helpers for tests that need agencies, a running relay, and messages going through it.

Shared by the relay, retry, edXML, demo and bench tests. Everything talks to the real services
of a :class:`relay.config.Settings` (``make_env()`` / ``env`` fixtures):

- :func:`add_agency` puts an agency in the directory and, for a connected one, provisions its
  RabbitMQ user, permissions and queues (``relay.broker.topology.provision_agency``).
- :class:`RelayProcess` runs ``lienthong relay run`` as a subprocess with the settings as
  ``LIENTHONG_*`` environment variables; SIGTERM on exit, :meth:`RelayProcess.kill` for SIGKILL.
- :func:`publish` / :func:`publish_many` submit as an agency (its own credentials, ``user_id``
  = its code, its own exchange ``lienthong.submit.<code>``, routing key = its code, confirms);
  :func:`publish_as_admin` publishes with the test's admin user (to forge what an agency cannot).
- :func:`drain` reads an agency's inbox with the agency's credentials.
- :func:`make_document` / :func:`make_status` build valid wire messages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
from sqlalchemy import Engine, insert, select

from relay.broker.management import ManagementClient
from relay.broker.topology import provision_agency
from relay.config import Settings
from relay.db.tables import agencies
from schemas import (
    Attachment,
    Document,
    Organization,
    ResponseFor,
    Status,
    encode_message,
    split_receipts,
)
from schemas import topology as t
from schemas.agency_code import is_strict_qcvn102

ROOT = Path(__file__).resolve().parents[1]


# -- agencies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Agency:
    code: str
    password: str | None  # None for a hosted unit (no broker user)
    amqp_url: str | None  # the agency's own broker URL (its credentials, the env's vhost)
    host: str | None = None

    @property
    def connected(self) -> bool:
        return self.host is None


def agency_amqp_url(settings: Settings, code: str, password: str) -> str:
    """``settings.amqp_url`` with the agency's credentials."""
    parts = urlsplit(settings.amqp_url)
    netloc = f"{quote(code, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def add_agency(
    settings: Settings,
    engine: Engine,
    code: str,
    *,
    name: str | None = None,
    host: str | None = None,
    state: str = "active",
) -> Agency:
    """A directory row; a connected agency (no host) also gets its broker user and queues."""
    with engine.begin() as conn:
        conn.execute(
            insert(agencies).values(
                code=code,
                name=name or f"Cơ quan {code}",
                host=host,
                state=state,
                strict_code=is_strict_qcvn102(code),
            )
        )
    if host is not None:
        return Agency(code=code, password=None, amqp_url=None, host=host)
    password = secrets.token_urlsafe(16)
    with ManagementClient(settings.management_url) as mgmt:
        provision_agency(mgmt, settings.vhost, code, password)
    return Agency(code=code, password=password, amqp_url=agency_amqp_url(settings, code, password))


def set_agency_state(engine: Engine, code: str, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(agencies.update().where(agencies.c.code == code).values(state=state))


def agency_exists(engine: Engine, code: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(select(agencies.c.code).where(agencies.c.code == code)).first() is not None
        )


# -- wire messages ----------------------------------------------------------------------


def make_document(
    sender: str,
    recipients: Sequence[str],
    *,
    document_id: str | None = None,
    size: int = 2048,
    business: dict[str, Any] | None = None,
) -> Document:
    """A valid document of about ``size`` bytes on the wire (padding in ``content``)."""
    doc = Document(
        document_id=document_id or f"{sender},2026/11/24,{uuid.uuid4().hex[:12]}/VP",
        sender=Organization(organ_id=sender, organ_name=f"Cơ quan {sender}"),
        recipients=[Organization(organ_id=r) for r in recipients],
        subject="Về việc thử nghiệm trục liên thông",
        **({"business": business} if business else {}),
    )
    pad = max(0, size - len(encode_message(doc)))
    if pad:
        doc.content = "x" * pad
    return doc


def make_status(
    sender: str,
    addressee: str,
    document_id: str,
    code: str,
    *,
    staff: str | None = "Nguyễn Văn A",
) -> Status:
    return Status.model_validate(
        {
            "sender": {"organ_id": sender},
            "response_for": {"organ_id": addressee, "document_id": document_id},
            "staff_info": {"staff": staff} if staff else None,
            "status_code": code,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
    )


def attachment(name: str = "a.pdf", data: bytes = b"%PDF-1.4 test") -> Attachment:
    return Attachment.from_bytes(name, data, "application/pdf")


_ = ResponseFor  # re-exported for tests building statuses by hand


# -- connections ------------------------------------------------------------------------


def connect(url: str, *, attempts: int = 5) -> pika.BlockingConnection:
    """A blocking connection, retried a few times: the shared broker is sometimes slow to answer
    the handshake while other suites create vhosts and queues."""
    params = pika.URLParameters(url)
    for n in range(attempts):
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError:
            if n == attempts - 1:
                raise
            time.sleep(0.5 * (n + 1))
    raise AssertionError("unreachable")


# -- publishing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message read from an inbox."""

    message_id: str | None
    type: str | None
    headers: dict[str, Any]
    body: bytes
    correlation_id: str | None = None
    #: for a receipt that came in a ``lienthong.receipts/1`` message, that message's id
    group: str | None = None


def received(props: pika.BasicProperties, body: bytes) -> list[Received]:
    """What one inbox message holds, as the adapter records it: a ``receipts`` message (a
    batch's receipts to one agency together) is one receipt each, under its ``receipt_id``."""
    if props.type != t.TYPE_RECEIPTS:
        return [
            Received(
                message_id=props.message_id,
                type=props.type,
                headers=dict(props.headers or {}),
                body=body,
                correlation_id=props.correlation_id,
            )
        ]
    return [
        Received(
            message_id=str(r.receipt_id),
            type=t.TYPE_RECEIPT,
            headers={},
            body=encode_message(r),
            correlation_id=r.in_reply_to,
            group=props.message_id,
        )
        for r in split_receipts(body)
    ]


def _props(
    message_id: str | None, message_type: str | None, user_id: str | None
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=t.CONTENT_TYPE,
        delivery_mode=2,
        message_id=message_id,
        type=message_type,
        user_id=user_id,
    )


def _body_and_type(message: Document | Status | bytes) -> tuple[bytes, str | None]:
    if isinstance(message, Document):
        return encode_message(message), t.TYPE_DOCUMENT
    if isinstance(message, Status):
        return encode_message(message), t.TYPE_STATUS
    return message, None


@contextlib.contextmanager
def agency_channel(agency: Agency) -> Iterator[Any]:
    """A confirm-mode channel on a connection with the agency's own credentials."""
    assert agency.amqp_url is not None, f"{agency.code} is a hosted unit: it has no broker user"
    conn = connect(agency.amqp_url)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        yield ch
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def publish(
    agency: Agency,
    message: Document | Status | bytes,
    *,
    message_id: str | None = None,
    message_type: str | None = None,
    user_id: str | bool | None = True,
) -> str:
    """Submit one message as ``agency``; returns its message id.

    ``user_id=True`` sets the agency's own code (what an adapter does), ``None``/``False``
    leaves it out. ``message_type`` defaults to the message's kind (none for raw bytes).
    """
    return publish_many(
        agency,
        [message],
        message_ids=[message_id] if message_id else None,
        message_type=message_type,
        user_id=user_id,
    )[0]


def publish_many(
    agency: Agency,
    messages: Iterable[Document | Status | bytes],
    *,
    message_ids: Sequence[str] | None = None,
    message_type: str | None = None,
    user_id: str | bool | None = True,
) -> list[str]:
    """Submit messages as ``agency`` over one connection, each confirmed; their message ids."""
    ids: list[str] = []
    uid = agency.code if user_id is True else (user_id or None)
    with agency_channel(agency) as ch:
        for n, message in enumerate(messages):
            body, kind = _body_and_type(message)
            mid = message_ids[n] if message_ids else str(uuid.uuid4())
            ch.basic_publish(
                t.submit_exchange(agency.code),
                t.submit_routing_key(agency.code),
                body,
                properties=_props(mid, message_type or kind, uid),
                mandatory=True,
            )
            ids.append(mid)
    return ids


def publish_as_admin(
    settings: Settings,
    routing_key: str,
    body: bytes,
    *,
    message_id: str | None = None,
    message_type: str | None = t.TYPE_DOCUMENT,
    user_id: str | None = None,
) -> str:
    """Publish to the relay's ``lienthong.submit`` (routing key = the outbox owner's code) with
    the settings' (admin) user, which no agency may write to: the broker lets it set
    ``user_id`` to its own name only, which lets a test send what no agency could."""
    mid = message_id or str(uuid.uuid4())
    conn = connect(settings.amqp_url)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            t.SUBMIT_EXCHANGE,
            routing_key,
            body,
            properties=_props(mid, message_type, user_id),
            mandatory=True,
        )
    finally:
        conn.close()
    return mid


def admin_user(settings: Settings) -> str:
    return urlsplit(settings.amqp_url).username or "guest"


# -- reading inboxes --------------------------------------------------------------------


def drain(
    agency: Agency,
    *,
    expect: int | None = None,
    timeout: float = 10.0,
    quiet: float = 0.5,
    urgent: bool = False,
) -> list[Received]:
    """Read (and ack) the agency's inbox (its urgent lane with ``urgent``) until ``expect``
    messages came (each receipt of a ``receipts`` message counting as one), or it stayed
    empty for ``quiet`` seconds (when ``expect`` is None), or ``timeout`` passed."""
    assert agency.amqp_url is not None
    out: list[Received] = []
    conn = connect(agency.amqp_url)
    deadline = time.monotonic() + timeout
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=500)
        last = time.monotonic()
        for method, props, body in ch.consume(
            t.inbox_queue(agency.code, urgent=urgent), inactivity_timeout=0.1
        ):
            now = time.monotonic()
            if method is not None:
                out.extend(received(props, body))
                ch.basic_ack(method.delivery_tag)
                last = now
            if expect is not None and len(out) >= expect:
                break
            if expect is None and now - last >= quiet:
                break
            if now >= deadline:
                break
        ch.cancel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    if expect is not None and len(out) < expect:
        # a test that expects more than will come waits the whole timeout: say so
        warnings.warn(
            f"drain({agency.code}) got {len(out)} of the {expect} messages expected in {timeout} s",
            stacklevel=2,
        )
    return out


# -- the relay as a process -------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """``LIENTHONG_*`` variables that make a process load exactly ``settings``."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"LIENTHONG_{name.upper()}"] = str(value)
    return env


class RelayProcess:
    """``lienthong relay run`` in a subprocess; logs go to a file (``log_text()``)."""

    def __init__(self, settings: Settings, *, log_level: str = "info") -> None:
        self.settings = settings
        self.log_level = log_level
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="relay-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> RelayProcess:
        env = settings_env(self.settings)
        env["LIENTHONG_LOG_LEVEL"] = self.log_level
        env["LIENTHONG_LOG_FORMAT"] = "json"
        mark = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from lienthong.cli import main; main()", "relay", "run"],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
        )
        if wait:
            self.wait_for_log('"relay.started"', timeout=timeout, since=mark)
        return self

    def log_text(self, since: int = 0) -> str:
        with self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, needle: str, *, timeout: float = 20.0, since: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text(since):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"relay exited ({self.proc.returncode}):\n{self.log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"relay never logged {needle} in {timeout}s:\n{self.log_text()}")

    def wait_consuming(self, codes: Iterable[str], *, timeout: float = 20.0) -> None:
        """Until the relay consumes each of these agencies' outboxes (it logs
        ``relay.outbox_consumed`` per agency; the management API's consumer counts lag by the
        broker's statistics interval)."""
        pending = set(codes)
        deadline = time.monotonic() + timeout
        while pending:
            for line in self.log_text().splitlines():
                if '"relay.outbox_consumed"' in line:
                    with contextlib.suppress(ValueError):
                        pending.discard(json.loads(line).get("agency", ""))
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"relay does not consume {sorted(pending)}:\n{self.log_text()}"
                )
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"relay exited ({self.proc.returncode}):\n{self.log_text()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.flush()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> RelayProcess:
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()
        if not any(exc):
            self.log_path.unlink(missing_ok=True)


def wait_until(predicate: Any, *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)
