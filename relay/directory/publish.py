"""The directory, published to the adapters (they have no database access).

Every ``directory_publish_seconds`` the relay reads the directory; when it differs from what it
last published (and once at start), it publishes a :class:`schemas.directory.DirectorySnapshot`
to the inbox of every active connected agency (exchange ``lienthong.deliver``, AMQP ``type`` =
``directory``, gzip-compressed, persistent, confirmed, ``mandatory``). The message id is derived
from the snapshot's version and the agency, so a copy published again after a relay restart is
recognised. An adapter keeps the latest snapshot: it learns the units it hosts (it may send for
them through the SDK connector) and answers the SDK's ``getAgenciesList`` from it.

Off by default (``directory_publish_seconds = 0``): the inbox then carries only deliveries,
statuses and receipts, as it always did.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import uuid

import pika
import pika.exceptions
import structlog
from sqlalchemy import Engine

from relay.config import Settings
from relay.directory import repository
from relay.directory.model import Agency
from relay.retry import amqp
from schemas import topology as t
from schemas.directory import (
    DIRECTORY_ENCODING,
    TYPE_DIRECTORY,
    DirectoryEntry,
    DirectorySnapshot,
    encode_snapshot,
)

log = structlog.get_logger()

#: Namespace of the snapshot message ids (uuid5); never change it.
DIRECTORY_NAMESPACE = uuid.UUID("5d0e3c1a-8f7b-5e2d-9a64-3b1f0c7d2e85")


def snapshot_of(agencies: list[Agency], at: dt.datetime | None = None) -> DirectorySnapshot:
    """The snapshot of ``agencies``; its version is a digest of the entries (not of the time)."""
    entries = [
        DirectoryEntry(code=a.code, name=a.name, host=a.host, state=a.state)
        for a in sorted(agencies, key=lambda a: a.code)
    ]
    digest = hashlib.sha256(
        json.dumps([e.model_dump(exclude_none=True) for e in entries], ensure_ascii=False).encode(
            "utf-8"
        )
    ).hexdigest()
    return DirectorySnapshot(
        version=digest[:32], published_at=at or dt.datetime.now(dt.UTC), agencies=entries
    )


def snapshot_message_id(version: str, code: str) -> str:
    return str(uuid.uuid5(DIRECTORY_NAMESPACE, f"{version}/{code}"))


class DirectoryPublisher:
    """Publishes the directory when it changes; runs until ``stop`` is set."""

    def __init__(self, settings: Settings, stop: threading.Event, engine: Engine) -> None:
        self.settings = settings
        self.stop = stop
        self.engine = engine
        self.published: str | None = None

    def run(self) -> None:
        """Publish until ``stop``; the engine is disposed of at the end."""
        engine = self.engine
        try:
            while not self.stop.is_set():
                try:
                    self.publish_once(engine)
                except Exception as e:  # loop boundary: logged, tried again next round
                    log.warning("directory.publish_failed", reason=f"{type(e).__name__}: {e}")
                self.stop.wait(self.settings.directory_publish_seconds)
        finally:
            engine.dispose()

    def publish_once(self, engine: Engine) -> bool:
        """Publish the directory if it changed since the last time; True when published."""
        with engine.connect() as conn:
            agencies = list(repository.list_agencies(conn))
        snapshot = snapshot_of(agencies)
        if snapshot.version == self.published:
            return False
        body = encode_snapshot(snapshot)
        targets = [a.code for a in agencies if a.connected and a.state == "active"]
        connection = amqp.connect(self.settings.amqp_url, name="lienthong-relay-directory")
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            for code in targets:
                try:
                    channel.basic_publish(
                        t.DELIVER_EXCHANGE,
                        t.deliver_routing_key(code),
                        body,
                        pika.BasicProperties(
                            message_id=snapshot_message_id(snapshot.version, code),
                            type=TYPE_DIRECTORY,
                            content_type=t.CONTENT_TYPE,
                            content_encoding=DIRECTORY_ENCODING,
                            delivery_mode=2,
                            headers={t.HEADER_RECIPIENT: code},
                        ),
                        mandatory=True,
                    )
                except pika.exceptions.UnroutableError:
                    log.warning("directory.unroutable", agency=code, note="no inbox queue")
        finally:
            if connection.is_open:
                connection.close()
        self.published = snapshot.version
        log.info(
            "directory.published",
            version=snapshot.version,
            agencies=len(agencies),
            inboxes=len(targets),
            bytes=len(body),
        )
        return True


def start_directory_publisher(settings: Settings, stop: threading.Event, engine: Engine) -> None:
    """Start the publisher in a daemon thread (the composition root does so when
    ``directory_publish_seconds`` is set, in the leading relay process only: one publisher per
    relay). ``engine``: its own, disposed of when it stops."""
    publisher = DirectoryPublisher(settings, stop, engine)
    threading.Thread(target=publisher.run, name="lienthong-directory", daemon=True).start()
