"""The SDK's JSON answers: ``status``, ``ErrorCode`` and ``ErrorDesc`` always, all three.

Clients of the axis test one or another of the three, so every answer carries them. Business
errors are HTTP 200 with ``status = "FAIL"`` and an ``ErrorDesc`` a vendor can act on; where the
real axis has a known wording (a sender the system does not own) it is used verbatim.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import LienthongError, TransientError

OK = "OK"
FAIL = "FAIL"


def ok(**extra: Any) -> dict[str, Any]:
    """A successful answer with ``extra`` fields (``DocId``, ``data``, ``count``…)."""
    return {"status": OK, "ErrorCode": "0", "ErrorDesc": "", **extra}


class VxpError(LienthongError):
    """A refused call; ``str()`` is the ``ErrorDesc``. Subclasses fix the ``ErrorCode``."""

    code = "1"

    def answer(self) -> dict[str, Any]:
        return {"status": FAIL, "ErrorCode": self.code, "ErrorDesc": str(self)}


class BadRequest(VxpError):
    """A parameter or body the adapter cannot use (missing, malformed)."""

    code = "400"


class BadSignature(VxpError):
    """The signed header set is missing, or its HMAC does not match the configured secret."""

    code = "401"


class NotOwned(VxpError):
    """The package's sender (or ``from``) is not the adapter's agency nor a unit it hosts."""

    code = "403"


class UnknownDocId(VxpError):
    """No received item (or sent package) has this ``docId``."""

    code = "404"


class BadHash(VxpError):
    """``hash-file`` is not the SHA-256 of the package received (tampered or truncated)."""

    code = "409"


class TooLarge(VxpError):
    code = "413"


class NotSupported(VxpError):
    """A call of the axis that the hub does not offer to adapters (the directory is the hub's)."""

    code = "501"


class Unavailable(VxpError, TransientError):
    """The adapter's local store cannot be written now (disk full…); the call can be retried."""

    code = "503"


def not_owned_text(sender: str, systemid: str) -> str:
    """The axis's own wording for a sender the calling system may not act for."""
    return f"Don vi gui {sender} khong dung voi ma da dang ky: {systemid}"
