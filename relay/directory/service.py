"""Directory operations, one transaction each: add, show, list, suspend, resume.

Broker changes are made inside the database transaction, before it commits: if RabbitMQ refuses
or cannot be reached, the directory is left unchanged (the broker calls are idempotent, so running
the command again finishes the job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from relay.broker.management import ManagementClient
from relay.broker.topology import agency_limits
from relay.config import Settings
from relay.directory import broker_objects, passwords, repository
from relay.directory.db import engine_for, transaction
from relay.directory.model import ACTIVE, SUSPENDED, Agency
from relay.directory.validation import check_code, check_name
from relay.errors import InvalidInput, LienthongError, NotFound
from schemas import is_strict_qcvn102

log = structlog.get_logger()


@dataclass(frozen=True)
class AddResult:
    agency: Agency
    created: bool  # False when the same agency was already there (idempotent re-add)
    provisioned: bool  # broker objects (re)declared
    generated_password: str | None  # to be shown once; None when given or kept


@dataclass(frozen=True)
class StateChange:
    agency: Agency
    changed: bool


def _describe(agency: Agency) -> str:
    host = f"hosted by {agency.host}" if agency.host else "connected"
    return f"name {agency.name!r}, {host}"


def add_agency(
    settings: Settings,
    code: str,
    name: str,
    *,
    host: str | None = None,
    password_file: Path | None = None,
) -> AddResult:
    """Add an agency; for a connected one, provision its RabbitMQ user, permissions and queues.

    Adding the same agency again (same name and host) is a no-op that repairs its broker objects
    (and sets the password from ``password_file`` if given); different data is an error.
    """
    check_code("code", code)
    name = check_name("--name", name)
    if host is not None:
        check_code("--host", host)
        if host == code:
            raise InvalidInput(
                f"--host: {host!r} is the agency itself; omit --host for a connected agency"
            )
    given_password = passwords.read_password_file(password_file) if password_file else None
    wanted = Agency(
        code=code, name=name, host=host, state=ACTIVE, strict_code=is_strict_qcvn102(code)
    )

    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        existing = repository.get(conn, code, for_update=True)
        if existing is not None and (existing.name, existing.host) != (name, host):
            raise InvalidInput(
                f"code: {code!r} is already in the directory ({_describe(existing)}), "
                f"not as given ({_describe(wanted)})"
            )
        if host is not None:
            host_agency = repository.get(conn, host)
            if host_agency is None:
                raise NotFound(f"--host: no agency with code {host!r}; add the host first")
            if not host_agency.connected:
                raise InvalidInput(
                    f"--host: {host!r} is itself hosted by {host_agency.host!r}; "
                    "a host must be a connected agency"
                )
        if existing is None:
            repository.insert(conn, wanted)
        agency = existing or wanted
        if host is not None:
            log.info(
                "agency.added" if existing is None else "agency.unchanged", agency=code, host=host
            )
            return AddResult(agency, existing is None, False, None)

        generated: str | None = None
        with ManagementClient(settings.management_url) as mgmt:
            # Users are broker-wide: one this hub did not create is never taken over.
            ours = broker_objects.check_not_foreign(mgmt, settings.vhost, code)
            password = given_password
            # A new agency always gets a password (a user this hub left over is taken over);
            # an existing one keeps its password unless a file is given.
            if password is None and (existing is None or not ours):
                password = generated = passwords.generate()
            broker_objects.provision(mgmt, settings.vhost, code, password, agency_limits(settings))
            if agency.suspended:
                broker_objects.set_write_allowed(mgmt, settings.vhost, code, False)
        log.info("agency.added" if existing is None else "agency.reprovisioned", agency=code)
        return AddResult(agency, existing is None, True, generated)


def list_agencies(
    settings: Settings, *, host: str | None = None, limit: int | None = None
) -> Sequence[Agency]:
    if host is not None:
        check_code("--host", host)
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        if host is not None and repository.get(conn, host) is None:
            raise NotFound(f"--host: no agency with code {host!r}")
        return repository.list_agencies(conn, host=host, limit=limit)


def show_agency(settings: Settings, code: str) -> dict[str, Any]:
    """The agency, how many units it hosts, and for a connected one its broker backlog.

    The backlog comes from the management API when it answers; otherwise ``broker.error`` says
    why (the directory part is still shown).
    """
    check_code("code", code)
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        agency = repository.get(conn, code)
        if agency is None:
            raise NotFound(f"code: no agency with code {code!r}")
        hosted = repository.count_hosted(conn, code)
    result = agency.to_json()
    result["route_to"] = agency.route_to
    result["hosted_units"] = hosted
    if agency.connected:
        broker: dict[str, Any]
        try:
            with ManagementClient(settings.management_url, timeout=5.0) as mgmt:
                broker = {
                    "vhost": settings.vhost,
                    "user": broker_objects.user_exists(mgmt, code),
                    **broker_objects.backlog(mgmt, settings.vhost, code),
                }
        except LienthongError as e:
            broker = {"vhost": settings.vhost, "error": str(e)}
        result["broker"] = broker
    return result


def _set_state(settings: Settings, code: str, state: str) -> StateChange:
    check_code("code", code)
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        agency = repository.get(conn, code, for_update=True)
        if agency is None:
            raise NotFound(f"code: no agency with code {code!r}")
        changed = agency.state != state
        if changed:
            repository.set_state(conn, code, state)
        if agency.connected:
            # Done even when the state did not change, so a retried command repairs the broker.
            with ManagementClient(settings.management_url) as mgmt:
                user = mgmt.get_user(code)
                if user is not None and broker_objects.owned_by(user, settings.vhost):
                    broker_objects.set_write_allowed(mgmt, settings.vhost, code, state == ACTIVE)
                elif user is not None:
                    log.warning("agency.user_not_ours", agency=code, vhost=settings.vhost)
        updated = repository.get(conn, code)
    assert updated is not None
    log.info(
        "agency.state_changed" if changed else "agency.state_unchanged", agency=code, state=state
    )
    return StateChange(updated, changed)


def suspend_agency(settings: Settings, code: str) -> StateChange:
    """Stop routing to and from the agency; a connected one also loses its publish right."""
    return _set_state(settings, code, SUSPENDED)


def resume_agency(settings: Settings, code: str) -> StateChange:
    """Route to and from the agency again and give a connected one back its publish right."""
    return _set_state(settings, code, ACTIVE)
