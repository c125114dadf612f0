"""The relay's side of the chunked transfer (issue 17), against real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from sqlalchemy import Engine

from relay.config import Settings
from schemas.chunks import (
    TYPE_CHUNK,
    TYPE_CHUNK_REQUEST,
    decode_chunk,
)
from tests.bigdocs_support import chunk_messages, chunk_request, chunked_document, stored_chunks
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    drain,
    publish,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

KiB = 1024


@pytest.fixture()
def trio(relay_env: Settings, db: Engine, relay: RelayProcess) -> tuple[Agency, Agency, Agency]:
    agencies = tuple(add_agency(relay_env, db, random_code()) for _ in range(3))
    relay.wait_consuming([a.code for a in agencies])
    return agencies  # type: ignore[return-value]


def test_chunks_sent_twice_are_stored_once_and_served_to_the_recipient_only(
    trio: tuple[Agency, Agency, Agency], db: Engine
) -> None:
    a, b, c = trio
    data = os.urandom(300 * KiB)
    pieces = chunk_messages(data, 128 * KiB)
    publish_many(a, [*pieces, *pieces], message_type=TYPE_CHUNK)
    wait_until(lambda: stored_chunks(db, a) == (3, len(data)), timeout=20)
    publish(a, chunked_document(a, b, data))
    [delivery] = [m for m in drain(b, expect=1, timeout=30) if m.type == "document"]
    assert json.loads(delivery.body)["attachments"][0]["transfer"] == "chunks"

    publish(
        b, chunk_request(a, data, from_offset=130 * KiB, count=8), message_type=TYPE_CHUNK_REQUEST
    )
    got = drain(b, expect=2, timeout=30)
    assert [m.type for m in got] == [TYPE_CHUNK, TYPE_CHUNK]
    rebuilt = b"".join(bytes(decode_chunk(m.body)[1]) for m in got)
    assert rebuilt == data[128 * KiB :]  # from the chunk holding byte 130 KiB on
    assert {decode_chunk(m.body)[0].sender for m in got} == {a.code}

    # C was never delivered the document: it gets a refusal, never the bytes.
    publish(c, chunk_request(a, data), message_type=TYPE_CHUNK_REQUEST)
    [answer] = drain(c, expect=1, timeout=30)
    assert answer.type == "receipt"
    receipt = json.loads(answer.body)
    assert receipt["kind"] == "rejected" and "was delivered no document" in receipt["reason"]


def test_a_document_whose_chunks_the_hub_lacks_is_rejected_saying_which(
    trio: tuple[Agency, Agency, Agency], db: Engine
) -> None:
    a, b, _ = trio
    data = os.urandom(200 * KiB)
    first, _second = chunk_messages(data, 128 * KiB)
    publish(a, first, message_type=TYPE_CHUNK)
    wait_until(lambda: stored_chunks(db, a)[0] == 1, timeout=20)
    publish(a, chunked_document(a, b, data))
    [answer] = drain(a, expect=1, timeout=30)
    receipt = json.loads(answer.body)
    assert receipt["kind"] == "rejected"
    assert f"holds {128 * KiB} of its {200 * KiB} bytes" in receipt["reason"]
    assert not [m for m in drain(b) if m.type == "document"]


def test_an_agency_cannot_write_chunks_into_another_agencys_document(
    trio: tuple[Agency, Agency, Agency], db: Engine
) -> None:
    a, b, c = trio
    data = os.urandom(100 * KiB)
    forged = os.urandom(100 * KiB)
    # C uploads other bytes under the SHA-256 of A's attachment, before A does.
    [piece] = chunk_messages(forged, 128 * KiB)
    piece = piece.replace(
        hashlib.sha256(forged).hexdigest().encode(), hashlib.sha256(data).hexdigest().encode()
    )
    publish(c, piece, message_type=TYPE_CHUNK)
    publish_many(a, chunk_messages(data, 128 * KiB), message_type=TYPE_CHUNK)
    wait_until(lambda: stored_chunks(db, a)[0] == 1 and stored_chunks(db, c)[0] == 1, timeout=20)
    publish(a, chunked_document(a, b, data))
    assert [m.type for m in drain(b, expect=1, timeout=30)] == ["document"]
    publish(b, chunk_request(a, data), message_type=TYPE_CHUNK_REQUEST)
    [chunk] = drain(b, expect=1, timeout=30)
    assert bytes(decode_chunk(chunk.body)[1]) == data
