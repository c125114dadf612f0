"""Issue 12 item 1: a submission with NUL or invalid UTF-8 in its properties or body is refused
with a receipt and kept, and the agency's later documents still flow."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pika
import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import rejections
from schemas import encode_message
from schemas import topology as t
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    agency_channel,
    drain,
    make_document,
)
from tests.services import random_code

pytestmark = [pytest.mark.integration, pytest.mark.hostile]


@pytest.fixture()
def pair(relay_env: Settings, db: Engine, relay: RelayProcess) -> tuple[Agency, Agency]:
    a = add_agency(relay_env, db, random_code())
    b = add_agency(relay_env, db, random_code())
    relay.wait_consuming([a.code, b.code])
    return a, b


def _publish_raw(
    agency: Agency,
    body: bytes,
    *,
    message_id: str | bytes,
    message_type: str | bytes = t.TYPE_DOCUMENT,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish as ``agency`` with properties an adapter would never set."""
    with agency_channel(agency) as ch:
        ch.basic_publish(
            t.submit_exchange(agency.code),
            "",
            body,
            properties=pika.BasicProperties(
                content_type=t.CONTENT_TYPE,
                delivery_mode=2,
                message_id=message_id,
                type=message_type,
                user_id=agency.code,
                headers=headers,
            ),
            mandatory=True,
        )


def _rejections_of(db: Engine, queue: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(select(rejections).where(rejections.c.queue == queue)).mappings()
        return [dict(r) for r in rows]


def _then_later_documents_flow(a: Agency, b: Agency, received: list[Any]) -> None:
    """Three good documents after the poison all reach B and A gets their receipts."""
    good = [make_document(a.code, [b.code]) for _ in range(3)]
    with agency_channel(a) as ch:
        for doc in good:
            ch.basic_publish(
                t.submit_exchange(a.code),
                "",
                encode_message(doc),
                properties=pika.BasicProperties(
                    content_type=t.CONTENT_TYPE,
                    delivery_mode=2,
                    message_id=str(uuid.uuid4()),
                    type=t.TYPE_DOCUMENT,
                    user_id=a.code,
                ),
                mandatory=True,
            )
    copies = drain(b, expect=3, timeout=20)
    assert sorted(json.loads(c.body)["document_id"] for c in copies) == sorted(
        d.document_id for d in good
    )
    receipts = [json.loads(m.body) for m in received + drain(a, expect=3, timeout=20)]
    kinds = sorted(r["kind"] for r in receipts)
    assert kinds == ["accepted", "accepted", "accepted", "rejected"], kinds


def test_a_nul_in_message_id_is_refused_kept_and_does_not_stall_the_agency(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    doc = make_document(a.code, [b.code])
    _publish_raw(a, encode_message(doc), message_id="poison\x00id")

    got = drain(a, expect=1, timeout=20)
    assert len(got) == 1, relay.log_text()[-3000:]
    receipt = json.loads(got[0].body)
    assert receipt["kind"] == "rejected"
    assert receipt["in_reply_to"] == "poison\\x00id"
    assert "message_id" in receipt["reason"] and "NUL" in receipt["reason"]
    [row] = _rejections_of(db, t.outbox_queue(a.code))
    assert row["message_id"] == "poison\\x00id"
    assert base64.b64decode(row["properties"]["raw"]["message_id"]) == b"poison\x00id"
    assert row["body"] == encode_message(doc)
    _then_later_documents_flow(a, b, got)


def test_a_message_id_that_is_not_utf8_is_refused_and_kept_losslessly(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    _publish_raw(a, encode_message(make_document(a.code, [b.code])), message_id=b"bad\xff\xfeid")

    got = drain(a, expect=1, timeout=20)
    assert len(got) == 1, relay.log_text()[-3000:]
    receipt = json.loads(got[0].body)
    assert receipt["kind"] == "rejected" and "UTF-8" in receipt["reason"]
    [row] = _rejections_of(db, t.outbox_queue(a.code))
    assert base64.b64decode(row["properties"]["raw"]["message_id"]) == b"bad\xff\xfeid"
    _then_later_documents_flow(a, b, got)


def test_a_nul_in_type_and_in_a_header_is_refused_and_kept(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    mid = str(uuid.uuid4())
    _publish_raw(
        a,
        encode_message(make_document(a.code, [b.code])),
        message_id=mid,
        message_type="document\x00",
        headers={"x-note": "a\x00b", "x-bytes": b"\xff\x00"},
    )

    got = drain(a, expect=1, timeout=20)
    assert len(got) == 1, relay.log_text()[-3000:]
    receipt = json.loads(got[0].body)
    assert receipt["kind"] == "rejected" and receipt["in_reply_to"] == mid
    assert "type" in receipt["reason"]
    [row] = _rejections_of(db, t.outbox_queue(a.code))
    raw = row["properties"]["raw"]
    assert base64.b64decode(raw["type"]) == b"document\x00"
    assert base64.b64decode(raw["headers.x-note"]) == b"a\x00b"
    assert row["properties"]["headers"]["x-note"] == "a\\x00b"
    _then_later_documents_flow(a, b, got)


def test_a_nul_in_a_text_field_of_the_body_is_refused_with_a_reason(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    doc = json.loads(encode_message(make_document(a.code, [b.code])))
    doc["subject"] = "Về việc\u0000thử"
    body = json.dumps(doc).encode()
    mid = str(uuid.uuid4())
    _publish_raw(a, body, message_id=mid)

    got = drain(a, expect=1, timeout=20)
    assert len(got) == 1, relay.log_text()[-3000:]
    receipt = json.loads(got[0].body)
    assert receipt["kind"] == "rejected" and "NUL" in receipt["reason"], receipt
    assert "Traceback" not in receipt["reason"] and "Error(" not in receipt["reason"]
    [row] = _rejections_of(db, t.outbox_queue(a.code))
    assert row["body"] == body
    _then_later_documents_flow(a, b, got)
