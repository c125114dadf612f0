"""``relay setup`` on a hub whose broker lost an agency's user (a database restored onto a new
broker without its definitions, a user deleted by hand): it cannot make the user (only the
broker and the agency know the password), so it names the agency and says what to run."""

from __future__ import annotations

import pytest
import structlog
from sqlalchemy import Engine

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.setup import run_setup
from tests.relay_support import add_agency
from tests.services import random_code

pytestmark = pytest.mark.integration


def test_relay_setup_names_a_connected_agency_whose_user_is_missing(
    relay_env: Settings, db: Engine, management: ManagementClient
) -> None:
    kept = add_agency(relay_env, db, random_code())
    lost = add_agency(relay_env, db, random_code())
    add_agency(relay_env, db, random_code(), host=kept.code)  # hosted: no user of its own
    management.delete_user(lost.code)

    with structlog.testing.capture_logs() as logs:
        run_setup(relay_env)

    missing = [e for e in logs if e["event"] == "relay.user_missing"]
    assert [e["agency"] for e in missing] == [lost.code]
    assert f"lienthong agency add {lost.code}" in missing[0]["hint"]
    assert "--password-file" in missing[0]["hint"]
