"""``lienthong federation …`` operations: add, list, show, remove a link (one transaction each).

Adding a link makes its agency code a connected agency of this hub (RabbitMQ user, inbox,
outbox, with the password the other hub gave it) and records the link; the relay starts it
within a few seconds (:mod:`relay.federation.link`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from relay import secretkey
from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.directory import broker_objects, passwords, repository
from relay.directory.db import engine_for, transaction
from relay.directory.model import ACTIVE, SUSPENDED, Agency
from relay.directory.publish import snapshot_of
from relay.directory.validation import check_code
from relay.domain.outgoing import hub_id
from relay.errors import InvalidInput, LienthongError, NotFound, ServiceUnavailable
from relay.federation import directory_sync, store
from relay.federation.link import submit_target, with_credentials
from schemas import is_strict_qcvn102
from schemas import topology as t
from schemas.directory import DIRECTORY_ENCODING, TYPE_DIRECTORY, encode_snapshot

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: Id kind of a pushed directory (one id per link agency and directory version).
KIND_DIRECTORY = "federation-directory"


@contextlib.contextmanager
def _quiet_pika() -> Iterator[None]:
    """pika logs a refused or failed connection as an error with its traceback; a command that
    expects it (a probe) reports it in its own words instead."""
    logger = logging.getLogger("pika")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _connect(url: str, user: str, password: str) -> pika.BlockingConnection:
    with _quiet_pika():
        return pika.BlockingConnection(with_credentials(url, user, password))


@dataclass(frozen=True)
class Added:
    link: store.Link
    created: bool
    reachable: str | None  # None when the other hub accepted the login; otherwise why not
    #: the removed link whose agency (suspended here, its backlog kept) this link took over
    resumed_agency_of: str | None = None


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"NAME: {name!r} is not a link name; use 1-32 lower-case letters, digits, - or _ "
            "(e.g. national)"
        )


def _split_url(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password in it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise InvalidInput(
            f"--amqp-url: {url!r} is not an AMQP URL; write amqp://CODE@HOST:5672/VHOST "
            "(and the password in --password-file)"
        )
    netloc = parts.hostname
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    password = unquote(parts.password) if parts.password else None
    return urlunsplit(parts._replace(netloc=netloc)), password


def _probe(link: store.Link, password: str) -> str | None:
    """None if the other hub accepts the link's login and has its inbox; otherwise why not."""
    user = urlsplit(link.amqp_url).username or link.agency
    try:
        connection = _connect(link.amqp_url, user, password)
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        return f"cannot log in to {link.amqp_url} as {user}: {type(e).__name__} {e}"
    try:
        connection.channel().queue_declare(t.inbox_queue(link.agency), passive=True)
        return None
    except pika.exceptions.AMQPError as e:
        return f"{link.amqp_url}: no queue {t.inbox_queue(link.agency)} for {user}: {e}"
    finally:
        if connection.is_open:
            connection.close()


def _provision_link_user(
    mgmt: ManagementClient, settings: Settings, agency: str, password: str
) -> None:
    """The link's RabbitMQ user here, with the password the other hub gave it: one identity.

    On one broker (two hubs in two vhosts) it is one user, created by the other hub: this hub
    adopts it (its tag added, the password left alone) once the password has been seen to open
    it; a user of that name that the password does not open is someone else's and refused.
    """
    try:
        broker_objects.check_not_foreign(mgmt, settings.vhost, agency)
    except broker_objects.UserNotOurs:
        if not _password_opens(settings.amqp_url, agency, password):
            raise
        mgmt.add_user_tag(agency, t.hub_tag(settings.vhost))
        broker_objects.provision(mgmt, settings.vhost, agency, None)
        return
    broker_objects.provision(mgmt, settings.vhost, agency, password)


def _password_opens(url: str, user: str, password: str) -> bool:
    """Whether the broker at ``url`` takes ``password`` for ``user`` (whatever its vhost
    rights: an access refusal comes after the login succeeded)."""
    try:
        connection = _connect(url, user, password)
    except pika.exceptions.ProbableAuthenticationError:
        return False
    except pika.exceptions.ProbableAccessDeniedError:
        return True
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        raise ServiceUnavailable(f"cannot check {user}'s password on this hub's broker: {e}") from e
    connection.close()
    return True


def _key_to_store(settings: Settings) -> secretkey.SecretKey:
    """The key a new password is encrypted with; none configured: refused, with what to do."""
    key = secretkey.key_from_settings(settings)
    if key is None:
        raise InvalidInput(
            f"{secretkey.SETTING} is not set, and the link's password is kept in the database "
            "only encrypted: make a key with `lienthong relay make-secret-key "
            f"/etc/lienthong/secret.key`, set {secretkey.SETTING}=/etc/lienthong/secret.key "
            "here and for `lienthong relay run`, then add the link again"
        )
    return key


def add_link(
    settings: Settings, name: str, amqp_url: str, agency: str, password_file: Path | None
) -> Added:
    """Record link ``name``: this hub is ``agency`` on the hub at ``amqp_url``; its password
    is stored encrypted with the key of ``LIENTHONG_SECRET_KEY_FILE`` (none: refused)."""
    _check_name(name)
    check_code("--agency", agency)
    url, in_url = _split_url(amqp_url)
    password = passwords.read_password_file(password_file) if password_file else in_url
    if not password:
        raise InvalidInput(
            "--password-file: the other hub's password for the link is neither in --amqp-url "
            "nor given with --password-file"
        )
    user = urlsplit(url).username
    if user is not None and user != agency:
        raise InvalidInput(
            f"--amqp-url: logs in as {user!r} but --agency is {agency!r}; the other hub "
            "authenticates the link as its agency, so they must be the same"
        )
    stored = secretkey.encrypt(_key_to_store(settings), password)
    link = store.Link(name=name, agency=agency, amqp_url=url, stored_password=stored)
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        existing = store.get_link(conn, name)
        if existing is not None and (existing.agency, existing.amqp_url) != (agency, url):
            raise InvalidInput(
                f"NAME: link {name!r} exists already (agency {existing.agency} at "
                f"{existing.amqp_url}); to change it, remove it (lienthong federation remove "
                f"{name}) and add it again: the new link takes over agency {existing.agency}"
            )
        other = next((k for k in store.all_links(conn) if k.agency == agency), None)
        if other is not None and other.name != name:
            raise InvalidInput(f"--agency: {agency} is the agency of link {other.name!r} already")
        entry = repository.get(conn, agency, for_update=True)
        # A removed link's agency (suspended by `remove`, its backlog kept) is taken over.
        resumed = (
            store.link_of_agency(conn, agency)
            if entry is not None and entry.connected and other is None
            else None
        )
        if entry is not None and other is None and resumed is None:
            raise InvalidInput(
                f"--agency: {agency} is an agency of this hub's directory; a link needs the "
                "code this hub has on the other hub, and no agency here may use it"
            )
        if entry is None:
            repository.insert(
                conn,
                Agency(
                    code=agency,
                    name=store.agency_name(name),
                    host=None,
                    state=ACTIVE,
                    strict_code=is_strict_qcvn102(agency),
                ),
            )
        elif entry.state != ACTIVE:
            repository.set_state(conn, agency, ACTIVE)
        store.mark_link_agency(conn, agency, name)
        if existing is None:
            store.insert_link(conn, link)
        else:
            store.update_password(conn, name, stored)
        with ManagementClient(settings.management_url) as mgmt:
            _provision_link_user(mgmt, settings, agency, password)
            broker_objects.set_write_allowed(mgmt, settings.vhost, agency, True)
    return Added(
        link=link,
        created=existing is None,
        reachable=_probe(link, password),
        resumed_agency_of=resumed,
    )


def list_links(settings: Settings) -> list[dict[str, Any]]:
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        links = store.all_links(conn)
        upstream = store.federation_links(conn).upstream
    return [
        {
            "name": k.name,
            "agency": k.agency,
            "amqp_url": k.amqp_url,
            "upstream": k.agency == upstream,
        }
        for k in links
    ]


def _remote_backlog(settings: Settings, link: store.Link) -> dict[str, Any]:
    """What waits on the other hub for the link to bring down (passive declare over AMQP)."""
    user = urlsplit(link.amqp_url).username or link.agency
    queue = t.inbox_queue(link.agency)
    try:
        password = link.password(settings)
    except secretkey.SecretKeyError as e:
        return {"queue": queue, "error": str(e)}
    try:
        connection = _connect(link.amqp_url, user, password)
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        return {"queue": queue, "error": f"unreachable: {type(e).__name__} {e}"}
    try:
        ok = connection.channel().queue_declare(queue, passive=True).method
        return {"queue": queue, "messages": ok.message_count, "consumers": ok.consumer_count}
    except pika.exceptions.AMQPError as e:
        return {"queue": queue, "error": str(e)}
    finally:
        if connection.is_open:
            connection.close()


def show_link(settings: Settings, name: str) -> dict[str, Any]:
    """The link, and its backlog each way: here (to go up) and on the other hub (to come
    down)."""
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        link = store.get_link(conn, name)
        if link is None:
            raise NotFound(f"NAME: no federation link {name!r} (see lienthong federation list)")
        upstream = store.federation_links(conn).upstream == link.agency
        state = repository.get(conn, link.agency)
    here: dict[str, Any]
    try:
        with ManagementClient(settings.management_url, timeout=5.0) as mgmt:
            found = broker_objects.backlog(mgmt, settings.vhost, link.agency)
            here = {
                "vhost": settings.vhost,
                "to_send": found["inbox"],
                "to_send_urgent": found["inbox_urgent"],
                "taken_in": found["outbox"],
            }
    except LienthongError as e:
        here = {"vhost": settings.vhost, "error": str(e)}
    return {
        "name": link.name,
        "agency": link.agency,
        "amqp_url": link.amqp_url,
        "upstream": upstream,
        "state": state.state if state else None,
        "password_stored": "encrypted" if link.encrypted else "plain text",
        "here": here,
        "there": _remote_backlog(settings, link),
    }


def remove_link(settings: Settings, name: str) -> store.Link:
    """Stop the link (the relay stops its pumps within seconds) and suspend its agency here:
    nothing more is routed to it; what waits in its inbox stays there (visible, resendable)."""
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        link = store.get_link(conn, name)
        if link is None:
            raise NotFound(f"NAME: no federation link {name!r} (see lienthong federation list)")
        store.delete_link(conn, name)
        repository.set_state(conn, link.agency, SUSPENDED)
        with ManagementClient(settings.management_url) as mgmt:
            broker_objects.set_write_allowed(mgmt, settings.vhost, link.agency, False)
    return link


@dataclass(frozen=True)
class Pushed:
    link: store.Link
    units: int
    message_id: str


def sync_directory(settings: Settings, name: str) -> Pushed:
    """Push this hub's units (every agency here but the links') to the hub of link ``name`` as
    units hosted by the link's agency there; that hub answers with a receipt (logged by the
    link as ``federation.receipt``)."""
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        link = store.get_link(conn, name)
        if link is None:
            raise NotFound(f"NAME: no federation link {name!r} (see lienthong federation list)")
        links = store.federation_links(conn).codes
        units = [a for a in repository.list_agencies(conn) if a.code not in links]
    snapshot = snapshot_of(units)
    message_id = hub_id(KIND_DIRECTORY, link.agency, snapshot.version)
    user = urlsplit(link.amqp_url).username or link.agency
    password = link.password(settings)
    try:
        connection = _connect(link.amqp_url, user, password)
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        raise ServiceUnavailable(
            f"cannot log in to {link.amqp_url} as {user}: {type(e).__name__} {e}"
        ) from e
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        exchange, routing_key = submit_target(link.agency)
        channel.basic_publish(
            exchange,
            routing_key,
            encode_snapshot(snapshot),
            properties=pika.BasicProperties(
                message_id=message_id,
                type=TYPE_DIRECTORY,
                user_id=link.agency,
                delivery_mode=2,
                content_type=t.CONTENT_TYPE,
                content_encoding=DIRECTORY_ENCODING,
                app_id=f"lienthong-federation {link.name}",
            ),
            mandatory=True,
        )
    except pika.exceptions.AMQPError as e:
        raise ServiceUnavailable(f"{link.amqp_url} did not take the directory: {e}") from e
    finally:
        if connection.is_open:
            connection.close()
    return Pushed(link=link, units=len(units), message_id=message_id)


def set_peer(settings: Settings, code: str, allowed: bool) -> bool:
    """Allow (or no longer allow) agency ``code`` of this hub to push its units here."""
    check_code("CODE", code)
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        agency = repository.get(conn, code)
        if agency is None:
            raise NotFound(f"CODE: no agency with code {code!r}; add it first")
        if not agency.connected:
            raise InvalidInput(f"CODE: {code} is hosted by {agency.host}; a peer hub is connected")
        if allowed:
            return directory_sync.add_peer(conn, code)
        return directory_sync.remove_peer(conn, code)


def list_peers(settings: Settings) -> list[str]:
    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        return sorted(directory_sync.peers(conn))
