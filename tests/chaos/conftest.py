"""The fault suite's fixtures (environments on shared or private services) and its table."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from tests.chaos import ports
from tests.chaos.scene import Tally
from tests.private_services import RabbitNode, rabbit_node, rabbitmq_available
from tests.services import Services, unique_name

#: Every case's row, printed as one table at the end of the run.
TABLE: list[Tally] = []

#: Relay tuning for the suite: it finds new agencies and stale deliveries quickly.
RELAY_TUNING: dict[str, object] = {"agency_poll_seconds": 0.5, "pending_sweep_seconds": 2.0}


def record(tally: Tally) -> Tally:
    TABLE.append(tally)
    print(render([tally]))
    return tally


def render(rows: list[Tally]) -> str:
    head = ("case", "sent", "arrived", "lost", "doubled", "seconds", "notes")
    cells = [
        (r.case, str(r.sent), str(r.arrived), str(r.lost), str(r.doubled), f"{r.seconds:.0f}",
         r.notes)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head) - 1)]

    def line(c: tuple[str, ...]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=False)) + " | " + c[-1]

    rule = "-+-".join("-" * w for w in widths) + "-+-" + "-" * 5
    return "\n".join([line(head), rule, *(line(c) for c in cells)])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TABLE:
        terminalreporter.section("fault table (DocumentIds counted at B's DMS)")
        terminalreporter.write_line(render(TABLE))


EnvMaker = Callable[..., Settings]


@contextlib.contextmanager
def environment(
    services: Services,
    *,
    amqp_base: str | None = None,
    management_url: str | None = None,
    database_url: str | None = None,
) -> Iterator[EnvMaker]:
    """Fresh environments (own vhost, own database) on the shared services unless told
    otherwise; the vhost, the database and the agency users are removed on exit."""
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        name = unique_name("lienthong_chaos")
        vhost = name.replace("_", "-")
        amqp = (
            services.amqp_url_for(vhost)
            if amqp_base is None
            else Services(amqp_base, "", "").amqp_url_for(vhost)
        )
        db_url = database_url or services.database_url
        db = Services("", db_url, "").database_url_for(name)
        settings = Settings(
            amqp_url=amqp,
            database_url=db,
            management_url=management_url or services.management_url,
            **{**RELAY_TUNING, **overrides},  # type: ignore[arg-type]
        )
        made.append(settings)
        run_setup(settings)
        return settings

    try:
        yield make
    finally:
        for settings in made:
            _remove(settings)


def _remove(settings: Settings) -> None:
    """Best effort: a private service may already be gone with everything on it."""
    with contextlib.suppress(Exception):
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                codes = list(conn.execute(text("SELECT code FROM agencies")).scalars())
        finally:
            engine.dispose()
        with ManagementClient(settings.management_url, timeout=20) as mgmt:
            for code in codes:
                with contextlib.suppress(Exception):
                    mgmt.delete_user(code)
            mgmt.delete_vhost(settings.vhost)
    with contextlib.suppress(Exception):
        database = settings.database_url.rsplit("/", 1)[1]
        admin = make_engine(settings.database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            with admin.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()


def need(available: bool, what: str) -> None:
    """Skip when a service the suite starts is not installed (fail under ``CI=true``)."""
    if available:
        return
    reason = f"{what} is not installed here; the fault suite starts its own"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def broker_node() -> Iterator[RabbitNode]:
    """A RabbitMQ node of the suite's own, for every case that does not break the broker."""
    need(rabbitmq_available(), "RabbitMQ")
    name, amqp, mgmt, dist = ports.BROKER
    with rabbit_node(name, amqp, mgmt, dist) as node:
        yield node


@pytest.fixture()
def broker_env(services: Services, broker_node: RabbitNode) -> Iterator[EnvMaker]:
    """Environments on the suite's own broker node and the shared PostgreSQL."""
    with environment(
        services, amqp_base=broker_node.amqp_url(), management_url=broker_node.management_url
    ) as make:
        yield make
