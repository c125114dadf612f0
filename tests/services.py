"""Where the tests find RabbitMQ and PostgreSQL (DESIGN §7).

1. ``LIENTHONG_TEST_AMQP_URL`` / ``LIENTHONG_TEST_DATABASE_URL`` / ``LIENTHONG_TEST_MANAGEMENT_URL``
   when set (``make test`` sets them to the services on loopback unless TEST_SERVICES=containers);
2. otherwise containers started with testcontainers when a Docker engine answers;
3. otherwise the tests that need them are skipped, or fail when ``CI=true``.

Every run gets a vhost and a database of its own, removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import pytest


@dataclass(frozen=True)
class Services:
    amqp_url: str  # without vhost, e.g. amqp://guest:guest@127.0.0.1:5672/
    database_url: str  # any database on the server; runs create their own next to it
    management_url: str

    def amqp_url_for(self, vhost: str) -> str:
        parts = urlsplit(self.amqp_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))

    def database_url_for(self, database: str) -> str:
        parts = urlsplit(self.database_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs RabbitMQ and PostgreSQL: {reason}", pytrace=False)
    pytest.skip(reason)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _containers() -> Iterator[Services]:
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with (
        RabbitMqContainer("rabbitmq:3.13-management") as rabbit,
        PostgresContainer("postgres:16", driver="psycopg") as pg,
    ):
        host = rabbit.get_container_host_ip()
        amqp_port = rabbit.get_exposed_port(5672)
        mgmt_port = rabbit.get_exposed_port(15672)
        yield Services(
            amqp_url=f"amqp://guest:guest@{host}:{amqp_port}/",
            database_url=pg.get_connection_url(),
            management_url=f"http://guest:guest@{host}:{mgmt_port}",
        )


@contextlib.contextmanager
def find_services() -> Iterator[Services]:
    amqp = os.environ.get("LIENTHONG_TEST_AMQP_URL")
    db = os.environ.get("LIENTHONG_TEST_DATABASE_URL")
    mgmt = os.environ.get("LIENTHONG_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
    if amqp and db:
        yield Services(amqp, db, mgmt)
    elif _docker_available():
        with _containers() as services:
            yield services
    else:
        _unavailable(
            "no LIENTHONG_TEST_AMQP_URL/LIENTHONG_TEST_DATABASE_URL and no Docker engine for "
            "testcontainers; run `make test`, which points the tests at the local services"
        )
        raise AssertionError("unreachable")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def random_code() -> str:
    """A random strict QCVN 102 agency code, so tests never collide."""
    n = secrets.randbelow(10**7)
    letter = "ABCDEFGHIK"[secrets.randbelow(10)]
    tail = f"{letter}{secrets.randbelow(100):02d}"
    return f"{n // 10**4:03d}.{n // 100 % 100:02d}.{n % 100:02d}.{tail}"
