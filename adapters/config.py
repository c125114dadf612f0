"""The adapter's configuration: one TOML file per agency, validated at start (DESIGN §5).

```toml
agency   = "000.00.00.G22"                     # its own code (its RabbitMQ user)
amqp_url = "amqp://127.0.0.1:5672/lienthong"   # credentials in the URL or in password_file
password_file = "/etc/lienthong/G22.secret"    # optional
root     = "/var/lib/lienthong/G22"            # the folder connector's root
format   = "json"                              # "json" or "edxml": how received files are written
```

Optional tuning keys are the other fields of :class:`AdapterConfig`. Secrets never appear in
``repr()`` or logs: :meth:`AdapterConfig.safe_url` hides the password.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from lienthong.monitoring import parse_addr
from schemas.agency_code import validate_agency_code


class ConfigError(ValueError):
    """The configuration cannot be used; ``str()`` names the key and the value."""


class AdapterConfig(BaseModel):
    """Everything the adapter daemon needs; unknown keys are an error (a typo is not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency: str = Field(description="the agency's own code, which is also its RabbitMQ user")
    amqp_url: str = Field(description="amqp[s]://[user:password@]host[:port]/vhost")
    password_file: Path | None = Field(
        None, description="file holding the RabbitMQ password when the URL has none"
    )
    root: Path = Field(description="the folder connector's root")
    format: Literal["json", "edxml"] = "json"

    # Tuning (all optional).
    poll_seconds: float = Field(0.5, gt=0, le=60, description="how often outbox/ is scanned")
    settle_seconds: float = Field(
        0.0, ge=0, le=600, description="ignore outbox files modified less than this long ago"
    )
    prefetch: int = Field(50, ge=1, le=10_000, description="unacked inbox deliveries")
    publish_batch: int = Field(100, ge=1, le=10_000, description="spool rows sent per round")
    reconnect_initial_seconds: float = Field(0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(30.0, gt=0, le=3600)
    heartbeat_seconds: int = Field(30, ge=0, le=600)
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)
    max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="larger outbox files are rejected"
    )
    metrics_addr: str = Field(
        "", description="host:port of /metrics, /healthz, /readyz (adapters/metrics.py); off"
    )

    # Filled from password_file (or the URL) by load_config; never logged.
    password: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("agency")
    @classmethod
    def _agency_is_a_code(cls, v: str) -> str:
        return validate_agency_code(v)

    @field_validator("metrics_addr")
    @classmethod
    def _addr_is_host_port(cls, v: str) -> str:
        parse_addr(v)  # AddressError is a ValueError: reported with the key's name
        return v

    @field_validator("amqp_url")
    @classmethod
    def _url_is_amqp(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("expected amqp://host[:port]/vhost or amqps://…")
        return v

    # Folders of DESIGN §5.
    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def sent_dir(self) -> Path:
        return self.outbox / "sent"

    @property
    def rejected_dir(self) -> Path:
        return self.outbox / "rejected"

    @property
    def inbox_documents(self) -> Path:
        return self.root / "inbox" / "documents"

    @property
    def inbox_statuses(self) -> Path:
        return self.root / "inbox" / "statuses"

    @property
    def inbox_receipts(self) -> Path:
        return self.root / "inbox" / "receipts"

    @property
    def spool_path(self) -> Path:
        return self.root / "spool.sqlite3"

    @property
    def lock_path(self) -> Path:
        return self.root / ".adapter.lock"

    def credentials(self) -> tuple[str, str]:
        """(user, password) for RabbitMQ: from the URL, else the agency code + password_file."""
        parts = urlsplit(self.amqp_url)
        if parts.username:
            return unquote(parts.username), unquote(parts.password or "")
        if self.password is None:
            raise ConfigError(
                f"amqp_url: {self.safe_url()!r} has no credentials and no password_file is set"
            )
        return self.agency, self.password.get_secret_value()

    def safe_url(self) -> str:
        """The AMQP URL with any password replaced by ``***``, for logs and messages."""
        parts = urlsplit(self.amqp_url)
        if parts.password is None:
            return self.amqp_url
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        netloc = f"{parts.username}:***@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def ensure_folders(self) -> None:
        """Create every folder of the connector (idempotent)."""
        for d in (
            self.sent_dir,
            self.rejected_dir,
            self.inbox_documents,
            self.inbox_statuses,
            self.inbox_receipts,
        ):
            d.mkdir(parents=True, exist_ok=True)


def _describe(e: ValidationError, data: dict[str, object]) -> str:
    lines = []
    for err in e.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (got {err.get('input')!r})")
        else:
            value = data.get(str(err["loc"][0])) if err["loc"] else None
            lines.append(f"{key}: {msg} (got {value!r})")
    return "; ".join(lines)


def parse_config(data: dict[str, object], *, base: Path | None = None) -> AdapterConfig:
    """Validate a config mapping; relative paths are taken relative to ``base``."""
    try:
        config = AdapterConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, data)) from e
    updates: dict[str, object] = {}
    if base is not None and not config.root.is_absolute():
        updates["root"] = base / config.root
    password_file = config.password_file
    if password_file is not None:
        if base is not None and not password_file.is_absolute():
            password_file = base / password_file
            updates["password_file"] = password_file
        try:
            secret = password_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                f"password_file: cannot read {str(password_file)!r} ({e.strerror})"
            ) from e
        if not secret:
            raise ConfigError(f"password_file: {str(password_file)!r} is empty")
        updates["password"] = SecretStr(secret)
    if updates:
        config = config.model_copy(update=updates)
    user = urlsplit(config.amqp_url).username
    if user is not None and unquote(user) != config.agency:
        raise ConfigError(
            f"amqp_url: the user {unquote(user)!r} is not the agency {config.agency!r}; an "
            "adapter connects as the RabbitMQ user named after its own code"
        )
    if user is None and config.password is None:
        raise ConfigError(
            f"amqp_url: {config.safe_url()!r} has no user:password and password_file is not "
            "set; give one of them (the RabbitMQ user is the agency code)"
        )
    return config


def load_config(path: Path) -> AdapterConfig:
    """Read and validate ``path`` (TOML); ConfigError says which key is wrong and why."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r} ({e.strerror})") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    try:
        return parse_config(data, base=path.parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
