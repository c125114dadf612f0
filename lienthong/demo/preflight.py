"""Before anything else: can RabbitMQ, its management API and PostgreSQL be reached at all?

A plain TCP connect per service answers in milliseconds (a refused port) or within the timeout
(a filtered one), so a machine without the services fails in seconds with a message saying
which service is missing, at what address, and the command that starts it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from relay.config import Settings

MAKE_UP = "or run `make up` to start RabbitMQ and PostgreSQL in Docker (deploy/docker-compose.yml)"


@dataclass(frozen=True)
class Endpoint:
    """One service the demo needs, where it is expected, and how a person starts it."""

    name: str
    url: str  # as shown to a person: no password
    host: str
    port: int
    how_to_start: str


def _postgres_start_command() -> str:
    versions = sorted(
        (p.name for p in Path("/etc/postgresql").glob("*") if p.is_dir()),
        key=lambda v: [int(x) if x.isdigit() else 0 for x in v.split(".")],
    )
    version = versions[-1] if versions else "<version>"
    return f"pg_ctlcluster --skip-systemctl-redirect {version} main start"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return parts._replace(netloc=netloc).geturl()


def endpoints(settings: Settings) -> list[Endpoint]:
    """The three services named by ``settings``, in the order they are checked."""
    amqp = urlsplit(settings.amqp_url)
    mgmt = urlsplit(settings.management_url)
    db = make_url(settings.database_url)
    default_mgmt_port = 443 if mgmt.scheme == "https" else 80
    return [
        Endpoint(
            "RabbitMQ (AMQP)",
            _without_password(settings.amqp_url),
            amqp.hostname or "127.0.0.1",
            amqp.port or (5671 if amqp.scheme == "amqps" else 5672),
            f"start it with `rabbitmq-server -detached`, {MAKE_UP}",
        ),
        Endpoint(
            "RabbitMQ management API",
            _without_password(settings.management_url),
            mgmt.hostname or "127.0.0.1",
            mgmt.port or default_mgmt_port,
            "enable the plugin with `rabbitmq-plugins enable rabbitmq_management` "
            f"(RabbitMQ itself must run), {MAKE_UP}",
        ),
        Endpoint(
            "PostgreSQL",
            db.render_as_string(hide_password=True),
            db.host or "127.0.0.1",
            db.port or 5432,
            f"start it with `{_postgres_start_command()}`, {MAKE_UP}",
        ),
    ]


@dataclass(frozen=True)
class Unreachable:
    endpoint: Endpoint
    error: str

    def explain(self) -> str:
        e = self.endpoint
        return (
            f"{e.name} is unreachable at {e.url} ({e.host}:{e.port}: {self.error}).\n"
            f"  To fix: {e.how_to_start}."
        )


def check(targets: list[Endpoint], timeout: float = 2.0) -> list[Unreachable]:
    """The endpoints that refuse or do not answer a TCP connect within ``timeout`` seconds."""
    failed: list[Unreachable] = []
    for target in targets:
        try:
            with socket.create_connection((target.host, target.port), timeout=timeout):
                pass
        except OSError as e:
            reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
            failed.append(Unreachable(target, reason))
    return failed
