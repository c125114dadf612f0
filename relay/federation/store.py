"""The ``federation_links`` table: what the relay's worker, the link runner and the CLI read;
and ``agencies.federation_link``, the link whose agency an agency is (kept after removal)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, insert, select, update

from relay import secretkey
from relay.config import Settings
from relay.db.tables import agencies, deliveries, documents
from relay.db.tables import federation_links as table
from relay.federation.bridge import DOWN, UP, forward_id
from relay.secretkey import SecretKey, SecretKeyError
from schemas import topology as t


@dataclass(frozen=True)
class Links:
    """This hub's federation links as routing needs them: the links' agency codes here, and
    the one that receives what no agency of this hub serves (the first link by name)."""

    codes: frozenset[str] = field(default_factory=frozenset)
    upstream: str | None = None

    def upstream_for(self, submitted_by: str) -> str | None:
        """Where codes unknown here go for a submission of ``submitted_by``: upstream, unless
        it came in through a link (so nothing is bounced back and forth)."""
        return None if submitted_by in self.codes else self.upstream


@dataclass(frozen=True)
class Link:
    name: str
    agency: str
    amqp_url: str  # the remote hub, without a password
    #: the password column as stored: ``fernet:<token>``, or plain text (:mod:`relay.secretkey`)
    stored_password: str = field(repr=False)

    @property
    def encrypted(self) -> bool:
        return secretkey.is_encrypted(self.stored_password)

    def password(self, settings: Settings) -> str:
        """The password the other hub gave the link, decrypted with the configured key (a
        plain-text one, stored before the key existed, as it is). Raises
        :class:`SecretKeyError` naming the link and the setting when it cannot be read."""
        try:
            key = secretkey.key_from_settings(settings) if self.encrypted else None
            return secretkey.decrypt(key, self.stored_password)
        except SecretKeyError as e:
            raise SecretKeyError(
                f"federation link {self.name!r}: cannot read its password: {e}"
            ) from None


def federation_links(conn: Connection) -> Links:
    """The links, for one batch of the relay's worker (a tiny table: one short query)."""
    rows = conn.execute(select(table.c.name, table.c.agency).order_by(table.c.name)).all()
    return Links(
        codes=frozenset(agency for _, agency in rows),
        upstream=rows[0][1] if rows else None,
    )


def all_links(conn: Connection) -> list[Link]:
    rows = conn.execute(
        select(
            table.c.name,
            table.c.agency,
            table.c.amqp_url,
            table.c.password,
        ).order_by(table.c.name)
    ).all()
    return [Link(*row) for row in rows]


def get_link(conn: Connection, name: str) -> Link | None:
    return next((link for link in all_links(conn) if link.name == name), None)


def insert_link(conn: Connection, link: Link) -> None:
    conn.execute(
        insert(table).values(
            name=link.name,
            agency=link.agency,
            amqp_url=link.amqp_url,
            password=link.stored_password,
        )
    )


def delete_link(conn: Connection, name: str) -> bool:
    return conn.execute(delete(table).where(table.c.name == name)).rowcount > 0


def agency_name(link: str) -> str:
    """The directory name ``federation add`` gives a link's agency."""
    return f"Federation link {link}"


def link_of_agency(conn: Connection, code: str) -> str | None:
    """The link (present or removed) whose agency ``code`` is, or None for an agency that was
    never a link's (an ordinary agency of the directory, or no agency)."""
    return conn.execute(
        select(agencies.c.federation_link).where(agencies.c.code == code)
    ).scalar_one_or_none()


def mark_link_agency(conn: Connection, code: str, link: str) -> None:
    """Make agency ``code`` link ``link``'s (kept when the link is removed, so that it can be
    added again); a name still the one a previous link gave it follows the new link."""
    previous = link_of_agency(conn, code)
    conn.execute(
        update(agencies)
        .where(agencies.c.code == code)
        .values(federation_link=link, updated_at=func.now())
    )
    if previous is not None and previous != link:
        conn.execute(
            update(agencies)
            .where(agencies.c.code == code, agencies.c.name == agency_name(previous))
            .values(name=agency_name(link))
        )


def forwarded_submission(
    conn: Connection, link_agency: str, document_id: str | None, forwarded_as: str
) -> tuple[str, list[str]] | None:
    """(document sender, recipients routed to the link) of this hub's submission that the link
    forwarded under ``forwarded_as`` (see :func:`upstream_id`)."""
    if not document_id:
        return None
    rows = conn.execute(
        select(
            documents.c.submitted_by,
            documents.c.message_id,
            documents.c.sender,
            deliveries.c.recipient,
        )
        .join(deliveries, deliveries.c.document_pk == documents.c.id)
        .where(documents.c.document_id == document_id, deliveries.c.route_to == link_agency)
        .order_by(deliveries.c.id)
    ).all()
    sender: str | None = None
    recipients: list[str] = []
    for submitted_by, message_id, doc_sender, recipient in rows:
        if upstream_id(submitted_by, message_id) == forwarded_as:
            sender = doc_sender
            recipients.append(recipient)
    return None if sender is None else (sender, recipients)


def update_password(conn: Connection, name: str, stored_password: str) -> None:
    conn.execute(update(table).where(table.c.name == name).values(password=stored_password))


def plain_text_passwords(conn: Connection) -> list[str]:
    """The links whose password is stored in plain text (recorded before a key was set)."""
    return [link.name for link in all_links(conn) if not link.encrypted]


def encrypt_plain_passwords(conn: Connection, key: SecretKey) -> list[str]:
    """Encrypt, with ``key``, the passwords stored in plain text; the links done, by name.
    Idempotent: an encrypted password is left as it is."""
    rows = conn.execute(
        select(table.c.name, table.c.password)
        .where(table.c.password.not_like(f"{secretkey.PREFIX}%"))
        .order_by(table.c.name)
        .with_for_update()
    ).all()
    for name, plain in rows:
        update_password(conn, name, secretkey.encrypt(key, plain))
    return [name for name, _ in rows]


def hub_neighbours(conn: Connection) -> dict[str, dict[str, str]]:
    """Agency codes that stand for another hub (for ``lienthong trace``): what each is, and
    the direction what is routed to it travels (``up`` through a link, ``down`` to a peer)."""
    from relay.federation.directory_sync import peers

    found = {
        link.agency: {"is": f"federation link {link.name!r} to {link.amqp_url}", "direction": UP}
        for link in all_links(conn)
    }
    for code in peers(conn):
        found.setdefault(code, {"is": "a peer hub (its units are hosted by it)", "direction": DOWN})
    return found


def id_there(direction: str, submitted_by: str, message_id: str) -> str:
    """The id a submission of this hub has on the next hub (:func:`bridge.forward_id`)."""
    headers = {t.HEADER_SENDER: submitted_by, t.HEADER_SUBMISSION_ID: message_id}
    return forward_id(direction, headers, message_id)


def upstream_id(submitted_by: str, message_id: str) -> str:
    return id_there(UP, submitted_by, message_id)
