"""The header fields the relay keeps as ``documents`` columns, written with the document at
intake (migration 0005), so nothing has to decode ``documents.payload`` again:

- ``priority`` (edXML ``OtherInfo/Priority``): Decree 30 due times (``relay/deadlines``);
- ``code_number``, ``code_notation``, ``promulgation_date`` (số, ký hiệu, ngày ban hành): the
  duplicate check (``relay/duplicates.py``, which needs all three) and the console's search;
- ``due_date`` (edXML ``DueDate``, hạn xử lý): the console's overdue marks.

Blank text is stored as NULL; a priority outside PostgreSQL's ``smallint`` is no priority the
standard knows (0-4) and is stored as NULL rather than failing the document's batch.
"""

from __future__ import annotations

from typing import Any, Final

from schemas import Document

SMALLINT: Final = range(-32768, 32768)


def _text(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


def header_columns(doc: Document) -> dict[str, Any]:
    """The ``documents`` columns of ``doc``'s header fields."""
    priority = doc.other_info.priority if doc.other_info else None
    # Compared with the bounds, not ``in SMALLINT``: ``None in range(...)`` walks all 65,536
    # values (1.4 ms), which was three quarters of the relay's time for documents without one.
    in_smallint = priority is not None and SMALLINT.start <= priority < SMALLINT.stop
    return {
        "priority": priority if in_smallint else None,
        "code_number": _text(doc.code.code_number) if doc.code else None,
        "code_notation": _text(doc.code.code_notation) if doc.code else None,
        "promulgation_date": (
            doc.promulgation_info.promulgation_date if doc.promulgation_info else None
        ),
        "due_date": doc.due_date,
    }
