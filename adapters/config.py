"""The adapter's configuration: one TOML file per agency, validated at start (DESIGN §5).

```toml
agency   = "000.00.00.G22"                     # its own code (its RabbitMQ user)
amqp_url = "amqp://127.0.0.1:5672/lienthong"   # credentials in the URL or in password_file
password_file = "/etc/lienthong/G22.secret"    # optional
root     = "/var/lib/lienthong/G22"            # the folder connector's root
format   = "json"                              # "json" or "edxml": how received files are written
# Over TLS (amqps://host:5671/lienthong): the CA that signed the hub's broker certificate, and
# the agency's own client certificate and key when the hub asks for one.
tls_ca_file   = "/etc/lienthong/hub-ca.pem"    # optional; the system's CAs when omitted
tls_cert_file = "/etc/lienthong/G22.crt.pem"   # optional, with tls_key_file
tls_key_file  = "/etc/lienthong/G22.key.pem"
```

Optional tuning keys are the other fields of :class:`AdapterConfig`. Secrets never appear in
``repr()`` or logs: :meth:`AdapterConfig.safe_url` hides the password.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from lienthong.monitoring import parse_addr
from schemas.agency_code import validate_agency_code
from schemas.errors import InvalidInput


class ConfigError(InvalidInput, ValueError):
    """The configuration cannot be used; ``str()`` names the key and the value."""


class VxpConfig(BaseModel):
    """``[vxp]``: the national SDK's API at the adapter (issue 15); absent = off.

    ```toml
    [vxp]
    listen      = "127.0.0.1:8280"        # host:port the DMS calls
    path_prefix = "/XrdAdapter/adapter"   # optional; "" by default
    systemid    = "dms-h41"               # the system id the DMS's SDK is configured with
    secret_file = "/etc/lienthong/H41.vxp-secret"   # first line: the shared secret
    ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(description="host:port the DMS calls")
    path_prefix: str = Field("", description="prefix of every path, e.g. /XrdAdapter/adapter")
    systemid: str = Field(min_length=1, description="the system id the DMS's SDK uses")
    secret_file: Path = Field(description="file whose first line is the shared secret")
    # Filled from secret_file by parse_config; never logged.
    secret: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, e.g. 127.0.0.1:8280")
        return v

    @field_validator("path_prefix")
    @classmethod
    def _prefix_is_a_path(cls, v: str) -> str:
        v = v.rstrip("/")
        if v and (not v.startswith("/") or " " in v):
            raise ValueError('expected "" or a path starting with "/", e.g. /XrdAdapter/adapter')
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


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
    tls_ca_file: Path | None = Field(
        None, description="CA bundle to verify the broker's certificate (amqps://)"
    )
    tls_cert_file: Path | None = Field(None, description="client certificate (PEM), amqps://")
    tls_key_file: Path | None = Field(None, description="its private key (PEM, unencrypted)")

    # Tuning (all optional).
    poll_seconds: float = Field(0.5, gt=0, le=60, description="how often outbox/ is scanned")
    settle_seconds: float = Field(
        0.0, ge=0, le=600, description="ignore outbox files modified less than this long ago"
    )
    temp_file_warn_seconds: float = Field(
        600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="warn (once per file) about an outbox file left this long under a dot-name",
    )
    prefetch: int = Field(50, ge=1, le=10_000, description="unacked inbox deliveries")
    publish_batch: int = Field(100, ge=1, le=10_000, description="spool rows sent per round")
    publish_batch_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="bytes of spool rows sent per round (a larger single row still goes alone)",
    )
    inbox_batch_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="bytes of inbox deliveries stored in one transaction (the batch is stored "
        "and acked as soon as it reaches this)",
    )
    reconnect_initial_seconds: float = Field(0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(30.0, gt=0, le=3600)
    heartbeat_seconds: int = Field(30, ge=0, le=600)
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)
    max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="larger outbox files are rejected"
    )
    # Large documents (issue 17, adapters/chunks.py, adapters/assembly.py)
    chunk_threshold_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="edXML outbox files larger than this are read from disk and their "
        "attachments sent in chunks",
    )
    chunk_bytes: int = Field(
        1024 * 1024, ge=1024 * 1024, le=4 * 1024 * 1024, description="bytes of one chunk"
    )
    max_package_bytes: int = Field(
        3 * 1024**3, ge=1024, description="larger edXML outbox files are rejected"
    )
    chunk_window: int = Field(8, ge=1, le=64, description="chunks asked for at a time")
    chunk_retry_seconds: float = Field(
        15.0, gt=0, le=3600, description="chunks asked for again after this long without one"
    )
    assembly_timeout_hours: float = Field(
        72.0,
        gt=0,
        le=24 * 365,
        description="a received document whose chunks stop coming for this long is abandoned",
    )
    metrics_addr: str = Field(
        "", description="host:port of /metrics, /healthz, /readyz (adapters/metrics.py); off"
    )

    #: The SDK connector (``[vxp]``); None = off.
    vxp: VxpConfig | None = None

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
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("expected amqp://host[:port]/vhost or amqps://…")
        return v

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.amqp_url).scheme == "amqps"

    def tls_context(self) -> ssl.SSLContext:
        """Verify the broker against ``tls_ca_file`` (else the system's CAs) and its host name;
        present the agency's client certificate when one is configured."""
        cafile = str(self.tls_ca_file) if self.tls_ca_file else None
        context = ssl.create_default_context(cafile=cafile)
        if self.tls_cert_file is not None:
            context.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file))
        return context

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
    def blobs_dir(self) -> Path:
        """Attachment bytes sent or received in chunks (issue 17)."""
        return self.root / ".lienthong-blobs"

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
        return redact_url(self.amqp_url)

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


def redact_url(url: str) -> str:
    """``url`` with whatever stands between ``user:`` and the last ``@`` replaced by ``***``.

    Works on malformed URLs too (no scheme, a ``/`` or ``@`` in the password, a bad port): it is
    what error messages show of a value that failed validation.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    if "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}"


def _shown(value: object) -> object:
    """A value as an error message may show it: strings that look like URLs are redacted."""
    return redact_url(value) if isinstance(value, str) else value


def _describe(e: ValidationError, data: dict[str, object]) -> str:
    lines = []
    for err in e.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (got {_shown(err.get('input'))!r})")
        else:
            value = data.get(str(err["loc"][0])) if err["loc"] else None
            if len(err["loc"]) > 1:  # a key of a table such as [vxp]: its own value
                value = err.get("input")
            lines.append(f"{key}: {msg} (got {_shown(value)!r})")
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
    if config.vxp is not None:
        updates["vxp"] = _load_vxp_secret(config.vxp, base)
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        tls_path: Path | None = getattr(config, key)
        if tls_path is None:
            continue
        if base is not None and not tls_path.is_absolute():
            tls_path = updates[key] = base / tls_path
        if not os.access(tls_path, os.R_OK) or not tls_path.is_file():
            raise ConfigError(f"{key}: cannot read {str(tls_path)!r}")
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        raise ConfigError("tls_cert_file and tls_key_file go together: give both or neither")
    if not config.uses_tls and any(
        getattr(config, k) for k in ("tls_ca_file", "tls_cert_file", "tls_key_file")
    ):
        raise ConfigError(
            f"amqp_url: {config.safe_url()!r} is not amqps:// but tls_* keys are set; use "
            "amqps://host:5671/vhost to connect over TLS"
        )
    if updates:
        config = config.model_copy(update=updates)
    if config.uses_tls:
        try:
            config.tls_context()
        except (ssl.SSLError, OSError, ValueError) as e:
            raise ConfigError(
                f"tls_ca_file/tls_cert_file/tls_key_file: cannot be loaded as PEM ({e})"
            ) from e
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


def _load_vxp_secret(vxp: VxpConfig, base: Path | None) -> VxpConfig:
    """``[vxp]`` with its secret read from ``secret_file`` (first line, blanks stripped)."""
    secret_file = vxp.secret_file
    if base is not None and not secret_file.is_absolute():
        secret_file = base / secret_file
    try:
        lines = secret_file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(
            f"vxp.secret_file: cannot read {str(secret_file)!r} ({e.strerror})"
        ) from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"vxp.secret_file: {str(secret_file)!r} is not UTF-8 text") from e
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ConfigError(f"vxp.secret_file: the first line of {str(secret_file)!r} is empty")
    return vxp.model_copy(update={"secret_file": secret_file, "secret": SecretStr(secret)})


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
