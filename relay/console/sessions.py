"""Signed session cookies and the CSRF token each session carries."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE: Final = "lienthong_session"
LANG_COOKIE: Final = "lienthong_lang"
CSRF_FIELD: Final = "csrf_token"


@dataclass(frozen=True)
class Session:
    username: str
    csrf: str


class SessionSigner:
    """Turns a :class:`Session` into a cookie value and back; a forged, altered or expired
    value reads as no session."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="lienthong.console.session")
        self.max_age = max_age_seconds

    def new(self, username: str) -> tuple[Session, str]:
        session = Session(username=username, csrf=secrets.token_urlsafe(32))
        return session, self._serializer.dumps({"u": session.username, "c": session.csrf})

    def read(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        username, csrf = data.get("u"), data.get("c")
        if not isinstance(username, str) or not isinstance(csrf, str):
            return None
        return Session(username=username, csrf=csrf)


def csrf_ok(session: Session, sent: object) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(session.csrf, sent)
