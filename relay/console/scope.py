"""The agencies a user's view covers: a clerk's agency and the units it hosts, or everything."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, exists, false, or_, select, true

from relay.console.roles import User
from relay.db.tables import agencies, deliveries, documents


@dataclass(frozen=True)
class Scope:
    everything: bool
    codes: frozenset[str] = frozenset()

    def covers(self, code: str) -> bool:
        return self.everything or code in self.codes

    def sent(self) -> ColumnElement[bool]:
        """SQL: the document row was sent by an agency of this view."""
        if self.everything:
            return true()
        if not self.codes:
            return false()
        return documents.c.sender.in_(sorted(self.codes))

    def received(self) -> ColumnElement[bool]:
        """SQL: the document row has a recipient in this view."""
        if self.everything:
            return true()
        if not self.codes:
            return false()
        return exists(
            select(deliveries.c.id).where(
                deliveries.c.document_pk == documents.c.id,
                deliveries.c.recipient.in_(sorted(self.codes)),
            )
        )

    def visible(self) -> ColumnElement[bool]:
        if self.everything:
            return true()
        return or_(self.sent(), self.received())

    def recipients_shown(self, sender: str) -> Scope:
        """Whose rows of a document from ``sender`` the user sees: all when the view sent it."""
        return Scope(everything=True) if self.covers(sender) else self


def scope_of(conn: Connection, user: User) -> Scope:
    if user.sees_everything:
        return Scope(everything=True)
    if user.agency is None:  # a clerk without an agency sees nothing (cannot be created)
        return Scope(everything=False)
    hosted = conn.execute(select(agencies.c.code).where(agencies.c.host == user.agency)).scalars()
    return Scope(everything=False, codes=frozenset({user.agency, *hosted}))
