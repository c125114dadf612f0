"""The fault suite's fixtures and the hook that prints its table at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos import ports
from tests.chaos.environments import EnvMaker, environment, need
from tests.chaos.table import TABLE, render
from tests.private_services import RabbitNode, rabbit_node, rabbitmq_available
from tests.services import Services


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TABLE:
        terminalreporter.section("fault table (DocumentIds counted at B's DMS)")
        terminalreporter.write_line(render(TABLE))


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
