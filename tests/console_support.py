"""Helpers for the console's tests: the console as a process, users, documents in the database.

- :class:`ConsoleProcess` runs ``lienthong console run --listen 127.0.0.1:PORT`` with a
  :class:`relay.config.Settings` as ``LIENTHONG_*`` variables, and waits until it answers.
- :func:`add_user` stores a console user the way ``lienthong console user add`` does.
- :func:`seed_document` writes a submission with its deliveries and status events as the relay
  does, for pages that only read (the browser tests also run the real relay).
- :func:`login` signs in over HTTP and returns the client holding the session cookie.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert

from relay.config import Settings
from relay.console import users
from relay.db.tables import deliveries, documents, events
from relay.domain.outgoing import delivery_message_id
from tests.relay_support import ROOT, settings_env

#: Statuses a recipient sent, in order, and the state they leave its delivery in.
PROGRESS_STATE = {
    "01": "delivered",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
}

LIENTHONG = (sys.executable, "-c", "from lienthong.cli import main; main()")
PASSWORD = "mật-khẩu-thử-nghiệm-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ConsoleProcess:
    """``lienthong console run`` in a subprocess on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix="console-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def __enter__(self) -> ConsoleProcess:
        env = settings_env(self.settings)
        env["LIENTHONG_CONSOLE_SECRET"] = secrets.token_urlsafe(32)
        self.proc = subprocess.Popen(
            [*LIENTHONG, "console", "run", "--listen", f"127.0.0.1:{self.port}"],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 60  # a loaded two-core machine starts Python slowly
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError(f"the console did not start:\n{self.log_text()}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        if not any(exc):
            self.log_path.unlink(missing_ok=True)


def add_user(
    engine: Engine, role: str, agency: str | None = None, *, name: str | None = None
) -> str:
    """A console user with :data:`PASSWORD`; its (random) name."""
    name = name or f"{role}-{secrets.token_hex(3)}"
    with engine.begin() as conn:
        users.add_user(conn, name, role, agency, PASSWORD)
    return name


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def login(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in as ``name`` (asserts the sign-in worked)."""
    client = httpx.Client(base_url=url, timeout=20, follow_redirects=False)
    resp = client.post("/login", data={"username": name, "password": password})
    assert resp.status_code == 303, resp.text
    return client


@dataclass(frozen=True)
class Seeded:
    document_id: str
    submission_id: str
    document_pk: int


def seed_document(
    engine: Engine,
    sender: str,
    recipients: Mapping[str, Sequence[str] | str],
    *,
    document_id: str | None = None,
    subject: str = "Về việc tổ chức hội nghị trực tuyến",
    number: tuple[str, str] = ("1234", "VPCP-KSTT"),
    priority: int = 1,
    due_date: dt.date | None = None,
    route_to: Mapping[str, str] | None = None,
) -> Seeded:
    """A submission from ``sender``; each recipient maps to the status codes it sent, in order,
    or to a delivery state (``"failed"``, ``"queued"``, ``"retrying"``)."""
    submission_id = str(uuid.uuid4())
    document_id = document_id or f"{sender},2026/11/30,{secrets.token_hex(3)}/{number[1]}"
    payload = {
        "schema": "lienthong.document/1",
        "document_id": document_id,
        "sender": {"organ_id": sender},
        "recipients": [{"organ_id": r} for r in recipients],
        "code": {"code_number": number[0], "code_notation": number[1]},
        "subject": subject,
        "other_info": {"priority": priority},
        **({"due_date": due_date.isoformat()} if due_date else {}),
    }
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        pk: int = conn.execute(
            insert(documents)
            .values(
                message_id=submission_id,
                document_id=document_id,
                business_type=0,
                sender=sender,
                submitted_by=sender,
                subject=subject,
                payload=json.dumps(payload, ensure_ascii=False).encode(),
                received_at=now - dt.timedelta(minutes=30),
            )
            .returning(documents.c.id)
        ).scalar_one()
        for recipient, history in recipients.items():
            codes = [history] if isinstance(history, str) else list(history)
            state = "queued"
            for code in codes:
                state = PROGRESS_STATE.get(code, code)
            did = conn.execute(
                insert(deliveries)
                .values(
                    document_pk=pk,
                    recipient=recipient,
                    route_to=(route_to or {}).get(recipient, recipient),
                    message_id=delivery_message_id(submission_id, recipient),
                    state=state,
                    attempts=8 if state == "failed" else 1,
                    last_error="rejected by the recipient's adapter" if state == "failed" else None,
                )
                .returning(deliveries.c.id)
            ).scalar_one()
            conn.execute(
                insert(events).values(
                    document_pk=pk,
                    delivery_id=did,
                    kind="queued",
                    actor=recipient,
                    at=now - dt.timedelta(minutes=29),
                )
            )
            for n, code in enumerate(c for c in codes if c in PROGRESS_STATE):
                conn.execute(
                    insert(events).values(
                        document_pk=pk,
                        delivery_id=did,
                        kind="status",
                        status_code=code,
                        staff="Nguyễn Thị Hoa",
                        actor=recipient,
                        message_id=str(uuid.uuid4()),
                        at=now - dt.timedelta(minutes=28 - 5 * n),
                    )
                )
    return Seeded(document_id=document_id, submission_id=submission_id, document_pk=pk)
