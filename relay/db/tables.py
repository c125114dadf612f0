"""The relay's tables (SQLAlchemy Core). States and kinds are plain text, checked by the domain."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from relay.domain import events as ev
from relay.domain import states as st


def _state_in(*states: str) -> str:
    """``state IN ('a', 'b')`` built from the state constants (the literals are fixed words)."""
    return f"state IN ({', '.join(repr(s) for s in states)})"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _ts(name: str, nullable: bool = False, default: bool = True) -> Column[object]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default else None,
    )


#: The agency directory. ``host`` is set for hosted units (no adapter of their own).
agencies = Table(
    "agencies",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("host", Text, ForeignKey("agencies.code", deferrable=True, initially="DEFERRED")),
    Column("state", Text, nullable=False, server_default=text("'active'")),
    Column("strict_code", Boolean, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    # The federation link that made this agency (relay/federation), kept when the link is
    # removed: `federation add` takes over a removed link's agency, never an ordinary one
    # (migration 0009).
    Column("federation_link", Text),
    Index("ix_agencies_host", "host"),
)

#: One row per accepted document submission (``message_id`` chosen by the sender's adapter,
#: unique per submitting agency: migration 0003).
documents = Table(
    "documents",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False),
    Column("document_id", Text, nullable=False),
    Column("business_type", SmallInteger, nullable=False),
    Column("sender", Text, nullable=False),  # edXML From/OrganId (maybe a hosted unit)
    Column("submitted_by", Text, nullable=False),  # the connected agency (RabbitMQ user)
    Column("subject", Text),
    Column("payload", LargeBinary, nullable=False),  # the body as received, for redelivery
    _ts("received_at"),
    # edXML OtherInfo/Priority: 1-4 are urgent (Decree 30 due times, migration 0005).
    Column("priority", SmallInteger),
    # Số, ký hiệu, ngày: a possible duplicate (Phụ lục VI III.1.h, relay/duplicates.py) and
    # the console's search; DueDate (hạn xử lý): its overdue marks (relay/document_headers.py).
    Column("code_number", Text),
    Column("code_notation", Text),
    Column("promulgation_date", Date),
    Column("due_date", Date),
    # Set when retention emptied ``payload`` (relay/retention, migration 0005).
    Column("payload_removed_at", DateTime(timezone=True)),
    Index("ix_documents_document_id", "document_id"),
    Index("ix_documents_message_id", "message_id"),
    UniqueConstraint("submitted_by", "message_id"),
    Index(
        "ix_documents_registration",
        "sender",
        "code_number",
        "code_notation",
        "promulgation_date",
        postgresql_where=text("code_number IS NOT NULL"),
    ),
)

#: One row per document x recipient: the delivery receipt.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("document_pk", BigInteger, ForeignKey("documents.id"), nullable=False),
    Column("recipient", Text, nullable=False),  # as addressed (maybe a hosted unit)
    Column("route_to", Text, nullable=False),  # the connected agency whose inbox receives it
    Column("message_id", Text, nullable=False, unique=True),  # deterministic delivery id
    Column("state", Text, nullable=False, server_default=text(f"'{st.PENDING}'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    _ts("created_at"),
    _ts("updated_at"),
    # Decree 30 due times of the recipient's 01 and 03 (relay/deadlines, migration 0005).
    Column("ack_due_at", DateTime(timezone=True)),
    Column("register_due_at", DateTime(timezone=True)),
    Column("urgent", Boolean),
    Column("overdue_notified_at", DateTime(timezone=True)),
    UniqueConstraint("document_pk", "recipient"),
    Index(
        "ix_deliveries_open",
        "state",
        "next_attempt_at",
        postgresql_where=text(_state_in(st.PENDING, st.RETRYING)),
    ),
    Index("ix_deliveries_route_to", "route_to"),
    Index("ix_deliveries_undated", "id", postgresql_where=text("ack_due_at IS NULL")),
    Index(
        "ix_deliveries_awaiting",
        "ack_due_at",
        postgresql_where=text(
            _state_in(st.PENDING, st.QUEUED, st.RETRYING, st.FAILED, st.DELIVERED)
        ),
    ),
)

#: The timeline: everything that happened to a document or one of its deliveries.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("document_pk", BigInteger, ForeignKey("documents.id")),
    Column("delivery_id", BigInteger, ForeignKey("deliveries.id")),
    Column("kind", Text, nullable=False),  # submitted, queued, status, retry_scheduled, ...
    Column("status_code", Text),
    Column("description", Text),
    Column("staff", Text),
    Column("actor", Text),  # agency code or operator name
    Column("message_id", Text),  # the status submission's message_id, when it is one
    _ts("at"),
    Column("detail", JSONB),
    Index("ix_events_document_pk", "document_pk"),
    Index("ix_events_delivery_id", "delivery_id"),
    # A status is recorded once per sender (migration 0003): another agency reusing its id
    # is a status of its own.
    Index(
        "uq_events_actor_message_id",
        "actor",
        "message_id",
        unique=True,
        postgresql_where=text("message_id IS NOT NULL"),
    ),
    # Recent returns per destination (retry helper, issue 5); only 'returned' rows are indexed,
    # so the relay's hot path pays nothing for it.
    Index("ix_events_returned", "actor", "at", postgresql_where=text(f"kind = '{ev.RETURNED}'")),
)

#: Messages the relay refused, kept with the reason (nothing is silently dropped).
rejections = Table(
    "rejections",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text),
    Column("queue", Text, nullable=False),
    Column("user_id", Text),
    Column("message_type", Text),
    Column("reason", Text, nullable=False),
    Column("properties", JSONB),
    Column("body", LargeBinary),
    Column("receipt", JSONB),
    _ts("at"),
    Index("ix_rejections_message_id", "message_id"),
)

#: Every receipt the relay sent, as sent.
receipts = Table(
    "receipts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("receipt_id", Text, nullable=False, unique=True),
    Column("agency", Text, nullable=False),  # whose inbox it went to
    Column("in_reply_to", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    _ts("at"),
    # Set while a receipt the hub stored on its own (delivery_failed) is owed to its agency and
    # not yet confirmed by the broker: the time it was stored, or last taken up again by the
    # retry schedule (migration 0008, relay.retry.outbox). NULL once published.
    Column("publish_pending_since", DateTime(timezone=True)),
    Index("ix_receipts_in_reply_to", "in_reply_to"),
    Index(
        "ix_receipts_publish_pending",
        "publish_pending_since",
        postgresql_where=text("publish_pending_since IS NOT NULL"),
    ),
)

#: Health of each destination inbox, so a recipient that is down costs one report, not one per
#: document.
destinations = Table(
    "destinations",
    metadata,
    Column("code", Text, primary_key=True),
    Column("state", Text, nullable=False, server_default=text("'up'")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("down_since", DateTime(timezone=True)),
    Column("last_probe_at", DateTime(timezone=True)),
    Column("last_error", Text),
    # The delivery sent as a probe while the destination is down (retry helper, issue 5).
    Column("probe_delivery_id", BigInteger),
    _ts("updated_at"),
)

#: Statuses and receipts that came back (dead-lettered from an inbox, or unroutable) with their
#: retry schedule: retried like deliveries, reported by ``failures`` when they finally fail
#: (migration 0003).
bounces = Table(
    "bounces",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False, unique=True),
    Column("message_type", Text, nullable=False),
    Column("route_to", Text, nullable=False),  # the connected agency whose inbox it is for
    Column("correlation_id", Text),
    Column("headers", JSONB),
    Column("body", LargeBinary, nullable=False),
    Column("state", Text, nullable=False, server_default=text(f"'{st.RETRYING}'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_bounces_due", "next_attempt_at", postgresql_where=text(f"state = '{st.RETRYING}'")),
)

#: The hub's content-addressed store of attachment bytes that travel in chunks (issue 17,
#: migration 0007): one row per chunk, keyed by the submitting agency, the SHA-256 of the whole
#: attachment and the chunk's offset. A document sent to 95 recipients stores its bytes once; a
#: retry or ``resend`` weeks later still finds them; ``stored_at`` lets retention drop them.
#: Keyed per submitting agency so that no agency can write bytes into another's document.
blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("submitted_by", Text, primary_key=True),
    Column("sha256", Text, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),  # bytes of the whole attachment
    Column("length", Integer, nullable=False),  # bytes of this chunk
    Column("data", LargeBinary, nullable=False),
    _ts("stored_at"),
)

#: The web console lists documents newest first and counts them per day (issue 19).
Index("ix_documents_received_at", documents.c.received_at)

#: People who use the web console (issue 19). ``role`` is operator, clerk or auditor
#: (relay/console/roles.py); a clerk's ``agency`` bounds what it sees.
console_users = Table(
    "console_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("agency", Text, ForeignKey("agencies.code")),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    _ts("created_at"),
    _ts("updated_at"),
)

#: What operators did in the console: who, what, when, and how it ended.
console_audit = Table(
    "console_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("at"),
    Column("username", Text, nullable=False),
    Column("action", Text, nullable=False),  # resend, suspend, resume
    Column("target", Text, nullable=False),  # the document id or agency code acted on
    Column("outcome", Text, nullable=False),  # done, nothing, refused
    Column("detail", JSONB),
    Column("client", Text),  # the client's address, as the console saw it
    Index("ix_console_audit_at", "at"),
)

#: Where a restartable batch job (retention) got to (migration 0005).
operation_checkpoints = Table(
    "operation_checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    _ts("updated_at"),
)

#: Federation links to other hubs (relay/federation, issue 16): this hub is agency ``agency``
#: on the remote hub at ``amqp_url`` (no password in it) and the link is a connected agency of
#: the same code here, with the same password (one identity; on one broker, one user). The
#: relay runs the link, so it keeps that password: ``fernet:<token>``, encrypted with the key
#: of LIENTHONG_SECRET_KEY_FILE, kept outside the database (relay/secretkey.py); a value
#: without the prefix is plain text, from before, encrypted by ``relay setup`` once a key is set.
federation_links = Table(
    "federation_links",
    metadata,
    Column("name", Text, primary_key=True),
    Column("agency", Text, nullable=False, unique=True),
    Column("amqp_url", Text, nullable=False),
    Column("password", Text, nullable=False),
    _ts("created_at"),
)

#: Agencies of this hub that are other hubs: each may push its units as its hosted units
#: (``lienthong federation sync-directory`` on that hub; ``federation peer add`` here).
federation_peers = Table(
    "federation_peers",
    metadata,
    Column("agency", Text, ForeignKey("agencies.code"), primary_key=True),
    _ts("created_at"),
)
