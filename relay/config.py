"""The relay's settings, read once from the environment (``LIENTHONG_*``) and passed down.

No other module reads ``os.environ``. Defaults work against RabbitMQ and PostgreSQL on loopback.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/lienthong"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/lienthong"
    management_url: str = "http://guest:guest@127.0.0.1:15672"

    # TLS to RabbitMQ (with an amqps:// URL): added to the AMQP URL as pika's ``ssl_options``,
    # so every connection the relay and the CLI open uses them. PostgreSQL's TLS is set in the
    # database URL itself (``?sslmode=verify-full&sslrootcert=…``, passed through to libpq).
    tls_ca_file: str = Field("", description="CA bundle verifying the broker's certificate")
    tls_cert_file: str = Field("", description="the relay's client certificate (PEM), if asked")
    tls_key_file: str = Field("", description="its private key (PEM)")

    # Relay pipeline
    workers: int = Field(
        1, ge=1, le=64, description="relay processes; each consumes a share of the outboxes"
    )
    prefetch: int = Field(250, ge=1, description="unacked outbox messages per consumer")
    batch_size: int = Field(250, ge=1, description="messages handled in one transaction")
    batch_wait_ms: int = Field(20, ge=0, description="how long a partial batch waits for more")
    intake_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        description="outbox bytes one worker holds unacked; above it, it stops taking more",
    )
    group_receipts: bool = Field(
        True,
        description="send a batch's receipts to one agency as one lienthong.receipts/1 "
        "message; off while adapters older than this hub still run (they refuse it)",
    )
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    agency_poll_seconds: float = Field(5.0, gt=0, description="how often new outboxes are found")
    pending_sweep_seconds: float = Field(10.0, gt=0)
    directory_publish_seconds: float = Field(
        0.0,
        ge=0,
        description="how often the directory is checked and, when changed, published to the "
        "adapters' inboxes (relay/directory/publish.py); 0 = not published",
    )

    # Retries of returned deliveries (DESIGN §2 step 6)
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    retry_max_attempts: int = Field(8, ge=1)
    destination_down_after: int = Field(
        5, ge=1, description="different deliveries to one inbox failing at once"
    )
    destination_probe_seconds: float = Field(60.0, gt=0)
    destination_window_seconds: float = Field(
        600.0, gt=0, description="returns older than this do not count towards 'down'"
    )
    retry_tick_seconds: float = Field(
        0.5, gt=0, description="how often the retry scheduler looks for due deliveries"
    )
    retry_batch_size: int = Field(100, ge=1, description="due deliveries claimed per tick")
    receipt_republish_seconds: float = Field(
        60.0,
        gt=0,
        description="a delivery_failed receipt stored but not confirmed by the broker this long "
        "after it was stored (the relay stopped between the commit and the confirm) is "
        "published again by the retry schedule (relay/retry/outbox.py)",
    )
    transfer_timeout_hours: float = Field(
        72.0,
        gt=0,
        description="a delivery whose attachments travel in chunks that is still queued this "
        "long after it was queued (its recipient never finished the transfer) is failed and "
        "its sender told (relay/blobs/expiry.py)",
    )

    # Broker policies
    inbox_ttl_ms: int = Field(7 * 24 * 3600 * 1000, ge=1000)
    inbox_delivery_limit: int = Field(20, ge=1)
    outbox_max_length_bytes: int = Field(2 * 1024**3, ge=1024)
    outbox_delivery_limit: int = Field(
        1000,
        ge=1,
        description="deliveries of one submission to the relay before it is set aside "
        "(lienthong.failed-submissions) and its sender told",
    )
    dead_letter_delivery_limit: int = Field(
        1000,
        ge=1,
        description="deliveries of one message of lienthong.returned or "
        "lienthong.failed-submissions before it is parked (lienthong.parked)",
    )

    # Per-agency broker limits, set on the agency's RabbitMQ user at provisioning (an adapter
    # needs one connection and one channel; the rest is room for `adapter send` and restarts).
    agency_max_connections: int = Field(
        10, ge=1, description="connections one agency's user may hold open at once"
    )
    agency_max_channels: int = Field(
        50, ge=1, description="channels one agency's user may hold open, over all connections"
    )

    # Web console (relay/console)
    console_secret: str = Field(
        "", description="key signing the console's session cookies; random at start if empty"
    )
    console_session_hours: float = Field(8.0, gt=0, description="how long a console login lasts")

    # Secrets kept in the database (relay/secretkey.py): a federation link's password
    secret_key_file: str = Field(
        "",
        description="file whose first line is the Fernet key encrypting the federation links' "
        "passwords in the database (lienthong relay make-secret-key FILE); empty: none, and "
        "federation add refuses",
    )

    log_level: str = "info"
    log_format: str = Field("json", pattern="^(json|console)$")

    # Operations (issue 18): monitoring endpoint, Decree 30 deadlines, retention
    metrics_addr: str = Field(
        "127.0.0.1:9464", description="host:port of /metrics, /healthz, /readyz; empty: off"
    )
    urgent_deadline_seconds: float = Field(
        900.0, gt=0, description="01 and 03 of an urgent document (Priority 1-4) are due after"
    )
    workday_end: dt.time = Field(dt.time(17, 0), description="a working day ends (Vietnam)")
    extra_holidays: str = Field(
        "", description="days off announced by the Government: YYYY-MM-DD,YYYY-MM-DD,…"
    )
    makeup_working_days: str = Field(
        "", description="make-up working days announced by the Government: YYYY-MM-DD,…"
    )
    deadline_tick_seconds: float = Field(
        15.0, gt=0, description="how often due times are filled in and overdue ones notified"
    )
    retention_days: int = Field(
        0, ge=0, description="payloads of finished documents older than this are removed; 0: off"
    )
    retention_batch_size: int = Field(500, ge=1, le=100_000)
    retention_interval_seconds: float = Field(3600.0, gt=0)

    @field_validator("extra_holidays", "makeup_working_days")
    @classmethod
    def _comma_separated_dates(cls, v: str) -> str:
        parse_dates(v)
        return v

    @property
    def extra_holiday_dates(self) -> list[dt.date]:
        return parse_dates(self.extra_holidays)

    @property
    def makeup_working_dates(self) -> list[dt.date]:
        return parse_dates(self.makeup_working_days)

    @model_validator(mode="after")
    def _tls_into_the_url(self) -> Settings:
        tls = {
            k: v
            for k, v in (
                ("ca_certs", self.tls_ca_file),
                ("certfile", self.tls_cert_file),
                ("keyfile", self.tls_key_file),
            )
            if v
        }
        if not tls:
            return self
        parts = urlsplit(self.amqp_url)
        if parts.scheme != "amqps":
            raise ValueError(
                "LIENTHONG_TLS_* are set but LIENTHONG_AMQP_URL is not amqps://; use "
                "amqps://host:5671/vhost to connect to RabbitMQ over TLS"
            )
        if "ssl_options=" not in parts.query:
            query = "&".join(q for q in (parts.query, "ssl_options=" + quote(repr(tls))) if q)
            self.amqp_url = urlunsplit(parts._replace(query=query))
        return self

    @property
    def vhost(self) -> str:
        """The vhost named in the AMQP URL (``/`` when the path is empty)."""
        return amqp_vhost(self.amqp_url)


def amqp_vhost(url: str) -> str:
    path = urlsplit(url).path
    if path in ("", "/"):
        return "/"
    return unquote(path[1:])


def parse_dates(text: str) -> list[dt.date]:
    """``2026-01-02,2026-04-25`` → dates; a wrong one raises ValueError naming it."""
    days = []
    for part in text.split(","):
        if part.strip():
            try:
                days.append(dt.date.fromisoformat(part.strip()))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a date (YYYY-MM-DD)") from None
    return days


def load_settings() -> Settings:
    return Settings()
