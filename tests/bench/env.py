"""The benchmark's own vhost, database and agencies, created at start and removed at the end."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import pika
from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError

from relay.broker.management import ManagementClient
from relay.broker.topology import declare_agency_queues, provision_agency
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import agencies
from relay.errors import LienthongError
from relay.setup import run_setup
from relay.worker.partition import Partition
from schemas import topology as t
from tests.services import Services, random_code, unique_name


def services_from_env() -> Services:
    """The same services as the tests (``LIENTHONG_TEST_*``), loopback by default."""
    return Services(
        amqp_url=os.environ.get("LIENTHONG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        database_url=os.environ.get(
            "LIENTHONG_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        management_url=os.environ.get(
            "LIENTHONG_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"
        ),
    )


@dataclass
class BenchEnv:
    settings: Settings
    services: Services
    database: str
    senders: list[tuple[str, str]] = field(default_factory=list)  # (code, password)
    recipients: list[str] = field(default_factory=list)

    @property
    def sender_codes(self) -> list[str]:
        return [c for c, _ in self.senders]

    def relay_env(self) -> dict[str, str]:
        """Environment variables for ``lienthong relay run`` against this environment."""
        return {
            "LIENTHONG_AMQP_URL": self.settings.amqp_url,
            "LIENTHONG_DATABASE_URL": self.settings.database_url,
            "LIENTHONG_MANAGEMENT_URL": self.settings.management_url,
        }

    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Ready messages per queue (AMQP passive declare: exact, unlike the management API)."""
        conn = pika.BlockingConnection(connection_parameters(self.settings.amqp_url))
        try:
            ch = conn.channel()
            return {q: ch.queue_declare(q, passive=True).method.message_count for q in queues}
        finally:
            conn.close()

    def purge(self, queues: list[str]) -> int:
        """Drop the ready messages of ``queues``; returns how many were dropped."""
        conn = pika.BlockingConnection(connection_parameters(self.settings.amqp_url))
        try:
            ch = conn.channel()
            return sum(ch.queue_purge(q).method.message_count for q in queues)
        finally:
            conn.close()

    @property
    def outboxes(self) -> list[str]:
        return [t.outbox_queue(c) for c in self.sender_codes]


def connection_parameters(url: str) -> pika.URLParameters:
    """Parameters that wait out a slow handshake: the shared broker sometimes stalls handshakes
    for a minute or more while other suites delete vhosts; each attempt gives up after 30 s and
    is tried again, five times in all."""
    params = pika.URLParameters(url)
    params.stack_timeout = 30
    params.connection_attempts = 5
    params.retry_delay = 1
    params.socket_timeout = 30
    params.blocked_connection_timeout = 300
    return params


def _distinct_codes(n: int, *, spread_over: int = 1, avoid: Collection[str] = ()) -> list[str]:
    """``n`` random agency codes not in ``avoid``; with ``spread_over`` relay workers, as many
    of them owned by each worker as can be (``relay.worker.partition``)."""
    workers = [Partition(i, spread_over) for i in range(spread_over)]
    shares = [n // spread_over + (1 if i < n % spread_over else 0) for i in range(spread_over)]
    codes: list[str] = []
    while len(codes) < n:
        code = random_code()
        owner = next(i for i, w in enumerate(workers) if w.owns(code))
        if code not in codes and code not in avoid and shares[owner] > 0:
            shares[owner] -= 1
            codes.append(code)
    return codes


def senders_per_worker(env: BenchEnv, workers: int) -> list[int]:
    """How many of the senders each of the relay's ``workers`` processes consumes."""
    return [sum(Partition(i, workers).owns(c) for c in env.sender_codes) for i in range(workers)]


@contextlib.contextmanager
def bench_env(
    services: Services, n_senders: int, n_recipients: int, *, spread_over: int = 1
) -> Iterator[BenchEnv]:
    """A set-up environment with ``n_senders`` connected agencies that have RabbitMQ users and
    ``n_recipients`` connected agencies (inbox only); all of it removed on exit.

    ``spread_over``: the relay's worker processes. Each owns the outboxes whose code hashes to
    it, so 20 random senders were split 13/7 or worse as often as not, and the busier worker
    set the pace (one worker had twice the other's samples in a profile); the senders are
    drawn so that each worker owns as many, as agencies by the hundred share out in a hub."""
    name = unique_name("lienthong_bench")
    vhost = name.replace("_", "-")
    settings = Settings(
        amqp_url=services.amqp_url_for(vhost),
        database_url=services.database_url_for(name),
        management_url=services.management_url,
        log_level="warning",
    )
    env = BenchEnv(settings=settings, services=services, database=name)
    with ManagementClient(services.management_url, timeout=60) as mgmt:
        try:
            run_setup(settings)
            senders = _distinct_codes(n_senders, spread_over=spread_over)
            codes = senders + _distinct_codes(n_recipients, avoid=senders)
            env.senders = [(c, secrets.token_urlsafe(16)) for c in codes[:n_senders]]
            env.recipients = codes[n_senders:]
            for code, password in env.senders:
                provision_agency(mgmt, vhost, code, password)
            for code in env.recipients:
                declare_agency_queues(mgmt, vhost, code)
            engine = make_engine(settings.database_url, pool_size=1)
            try:
                with engine.begin() as db:
                    db.execute(
                        insert(agencies),
                        [
                            {"code": c, "name": f"Cơ quan {c} (bench)", "strict_code": True}
                            for c in codes
                        ],
                    )
            finally:
                engine.dispose()
            yield env
        finally:
            _cleanup(mgmt, services, env, vhost, name)


def _cleanup(
    mgmt: ManagementClient, services: Services, env: BenchEnv, vhost: str, database: str
) -> None:
    """Remove users, vhost and database; each step is tried even when another fails."""
    problems: list[str] = []
    for code, _ in env.senders:
        try:
            mgmt.delete_user(code)
        except LienthongError as e:
            problems.append(f"user {code}: {e}")
    try:
        mgmt.delete_vhost(vhost)
    except LienthongError as e:
        problems.append(f"vhost {vhost}: {e}")
    admin = make_engine(services.database_url_for("postgres"), pool_size=1)
    try:
        with admin.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    except SQLAlchemyError as e:
        problems.append(f"database {database}: {e}")
    finally:
        admin.dispose()
    for problem in problems:
        print(f"bench: cleanup failed, remove by hand: {problem}", file=sys.stderr)
