"""The demo's own corner of the servers: a vhost and a database, wiped and set up on every run.

The demo runs on the same RabbitMQ and PostgreSQL as everything else but never touches the
default ``lienthong`` vhost or database: it uses ``lienthong-demo`` / ``lienthong_demo`` (or the
names given on the command line), so a developer's hub and the test suite are left alone.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from lienthong.demo.errors import DemoFailed
from lienthong.demo.scenario import Agency
from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.errors import ServiceUnavailable

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_name(kind: str, value: str) -> str:
    """Vhost and database names are interpolated into a DROP: only plain names are accepted."""
    if not NAME_PATTERN.fullmatch(value):
        raise DemoFailed(
            f"{kind} {value!r} is not a plain name: use lowercase letters, digits, '-' and '_'"
        )
    return value


def demo_settings(base: Settings, vhost: str, database: str) -> Settings:
    """``base`` (from the environment) pointed at the demo's vhost and database."""
    amqp = urlsplit(base.amqp_url)
    amqp_url = amqp._replace(path="/" + quote(vhost, safe="")).geturl()
    database_url = (
        make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    )
    return base.model_copy(update={"amqp_url": amqp_url, "database_url": database_url})


def child_environment(settings: Settings, inherited: dict[str, str]) -> dict[str, str]:
    """The environment of every ``lienthong`` process the demo starts."""
    env = {k: v for k, v in inherited.items() if not k.startswith("LIENTHONG_")}
    env.update(
        LIENTHONG_AMQP_URL=settings.amqp_url,
        LIENTHONG_DATABASE_URL=settings.database_url,
        LIENTHONG_MANAGEMENT_URL=settings.management_url,
        LIENTHONG_LOG_FORMAT="json",
        LIENTHONG_LOG_LEVEL="info",
        # No /metrics endpoint: the port may be a real relay's (LIENTHONG_METRICS_ADDR).
        LIENTHONG_METRICS_ADDR="",
        PYTHONUNBUFFERED="1",
    )
    return env


def patiently() -> Retrying:
    """Retries for idempotent set-up steps: a loaded broker drops the odd management request."""
    return Retrying(
        retry=retry_if_exception_type(ServiceUnavailable),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=1, max=8),
        reraise=True,
    )


def reset(settings: Settings) -> None:
    """Drop the demo's vhost and database if they exist, so the demo starts from nothing.

    The vhost is created again at once (empty); the database is left to `relay setup`.
    """
    # Deleting a vhost deletes its quorum queues one by one: on a busy broker that takes a
    # while, longer than the client's default timeout.
    # Creating one can be slow too, so it is created here, patiently, and `relay setup` (whose
    # client gives up sooner) finds it there.
    with ManagementClient(settings.management_url, timeout=90.0) as mgmt:
        for attempt in patiently():
            with attempt:
                mgmt.delete_vhost(settings.vhost)
                mgmt.ensure_vhost(settings.vhost)
    url = make_url(settings.database_url)
    database = url.database or ""
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    except OperationalError as e:
        raise ServiceUnavailable(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} refused the reset: "
            f"{str(e.orig).strip() if e.orig else e}"
        ) from e
    finally:
        admin.dispose()


def demo_password() -> str:
    """A random password for one run: never in the source, only in the work directory.

    RabbitMQ users are global, not per vhost: a second demo running at the same time on the
    same broker (in another vhost) sets new passwords and locks the first one's adapters out;
    run them one after the other (or on separate brokers).
    """
    return "demo-" + secrets.token_urlsafe(18)


@dataclass(frozen=True)
class AdapterHome:
    """One connected agency's folder under the demo's work directory."""

    code: str
    root: Path  # the folder connector's root (outbox/, inbox/…)
    config: Path  # adapter.toml
    password_file: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def inbox(self, kind: str) -> Path:
        return self.root / "inbox" / kind


def prepare_home(
    workdir: Path, agency: Agency, settings: Settings, file_format: str = "json"
) -> AdapterHome:
    """Write the agency's password file and adapter.toml; create its folders."""
    home = workdir / "agencies" / agency.code
    root = home / "dms"
    for sub in ("outbox", "inbox/documents", "inbox/statuses", "inbox/receipts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # Handed to `agency add --password-file`, which sets it, and to the adapter.
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    secret = secrets_dir / f"{agency.code}.secret"
    secret.write_text(demo_password() + "\n", encoding="utf-8")
    secret.chmod(0o600)
    # No credentials in the URL: the adapter connects as its agency code with password_file.
    amqp = urlsplit(settings.amqp_url)
    netloc = amqp.hostname or "127.0.0.1"
    if amqp.port:
        netloc += f":{amqp.port}"
    url = amqp._replace(netloc=netloc).geturl()
    config = home / "adapter.toml"
    config.write_text(
        f"# {agency.name}: written by `lienthong demo`\n"
        f'agency = "{agency.code}"\n'
        f'amqp_url = "{url}"\n'
        f'password_file = "{secret.resolve()}"\n'
        f'root = "{root.resolve()}"\n'
        f'format = "{file_format}"\n',
        encoding="utf-8",
    )
    return AdapterHome(agency.code, root, config, secret)


def directory_csv(workdir: Path, agencies: list[Agency]) -> Path:
    """The demo's agencies as an ``agency import`` CSV (code,name,host)."""
    path = workdir / "agencies.csv"
    lines = ["code,name,host"] + [f"{a.code},{a.name},{a.host or ''}" for a in agencies]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
