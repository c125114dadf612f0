"""The relay's settings, read once from the environment (``LIENTHONG_*``) and passed down.

No other module reads ``os.environ``. Defaults work against RabbitMQ and PostgreSQL on loopback.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/lienthong"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/lienthong"
    management_url: str = "http://guest:guest@127.0.0.1:15672"

    # Relay pipeline
    workers: int = Field(
        1, ge=1, le=64, description="relay processes; each consumes a share of the outboxes"
    )
    prefetch: int = Field(2000, ge=1, description="unacked outbox messages per consumer")
    batch_size: int = Field(500, ge=1, description="messages handled in one transaction")
    batch_wait_ms: int = Field(20, ge=0, description="how long a partial batch waits for more")
    intake_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        description="outbox bytes one worker holds unacked; above it, it stops taking more",
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

    # Broker policies
    inbox_ttl_ms: int = Field(7 * 24 * 3600 * 1000, ge=1000)
    inbox_delivery_limit: int = Field(20, ge=1)
    outbox_max_length_bytes: int = Field(2 * 1024**3, ge=1024)

    log_level: str = "info"
    log_format: str = Field("json", pattern="^(json|console)$")

    @property
    def vhost(self) -> str:
        """The vhost named in the AMQP URL (``/`` when the path is empty)."""
        return amqp_vhost(self.amqp_url)


def amqp_vhost(url: str) -> str:
    path = urlsplit(url).path
    if path in ("", "/"):
        return "/"
    return unquote(path[1:])


def load_settings() -> Settings:
    return Settings()
