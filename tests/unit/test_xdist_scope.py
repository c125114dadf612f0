"""How ``make test`` shares the test files between its pytest-xdist workers (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED, xdist_scope


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("tests/chaos/test_process_kills.py::test_relay_sigkilled", "chaos"),
        ("tests/chaos/test_service_outages.py::test_broker[stop]", "chaos"),
        ("tests/e2e/test_demo.py::test_the_demo_plays", "demo"),
        ("tests/integration/test_demo_users.py::test_x", "demo"),
        ("tests/integration/test_relay_postgres_outage.py::test_a", "trustrelay"),
        ("tests/integration/test_relay_database_outage.py::test_b", "trustrelay"),
        ("tests/integration/test_tls.py::test_c[a::b]", "tests/integration/test_tls.py"),
        ("tests/unit/test_vxp_config.py::test_d", "tests/unit/test_vxp_config.py"),
    ],
)
def test_a_test_goes_with_its_group_or_else_its_file(nodeid: str, scope: str) -> None:
    assert xdist_scope(nodeid) == scope


def test_every_shared_path_exists() -> None:
    # A renamed file would silently leave its group and race the others on a worker of its own.
    root = Path(__file__).resolve().parents[2]
    missing = [p for paths in SHARED.values() for p in paths if not (root / p).exists()]
    assert missing == []
