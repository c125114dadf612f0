"""Which documents are urgent: edXML ``OtherInfo/Priority`` 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc,
4 Hỏa tốc hẹn giờ (Decree 30/2020, Điều 21: handled immediately).

An urgent document travels in the urgent lane (DESIGN §3): the adapter publishes it to its
agency's urgent outbox, the relay consumes urgent outboxes first and publishes its copies to the
urgent inboxes, which each adapter consumes on a channel of its own.
"""

from __future__ import annotations

import json

from schemas import topology as t
from schemas.document import TRANSFER_CHUNKS, Document

#: ``OtherInfo/Priority`` values of urgent documents (0 or absent: ordinary).
URGENT_PRIORITIES: frozenset[int] = frozenset({1, 2, 3, 4})

#: Only a JSON object key appears with bare quotes in a JSON text (quotes inside strings are
#: escaped), so a body without it has no priority at all and is not parsed.
_PRIORITY_KEY = b'"priority"'


def is_urgent_priority(priority: object) -> bool:
    return (
        isinstance(priority, int)
        and not isinstance(priority, bool)
        and (priority in URGENT_PRIORITIES)
    )


def is_urgent_document(document: Document) -> bool:
    return document.other_info is not None and is_urgent_priority(document.other_info.priority)


def is_urgent_submission(message_type: str, body: bytes) -> bool:
    """True for the JSON body of an urgent document (what an adapter's spool holds).

    Anything that is not a readable document is ordinary: the relay reads it from the ordinary
    outbox and answers it there as before (a refusal keeps its words).
    """
    if message_type != t.TYPE_DOCUMENT or _PRIORITY_KEY not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    attachments = data.get("attachments")
    if isinstance(attachments, list) and any(
        isinstance(a, dict) and a.get("transfer") == TRANSFER_CHUNKS for a in attachments
    ):
        # Its chunks go through the ordinary outbox and the relay refuses a document whose
        # bytes it does not hold yet; the lanes keep no order between them, so the document
        # follows its chunks in the ordinary lane.
        return False
    other_info = data.get("other_info")
    return isinstance(other_info, dict) and is_urgent_priority(other_info.get("priority"))
