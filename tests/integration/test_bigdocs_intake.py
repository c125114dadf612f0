"""The relay's intake pause (``intake_max_bytes``) loses nothing when several outboxes fill.

Large documents fill the relay's intake with chunks, so it pauses (cancels its consumers) and
resumes often, with several outboxes at once. Every chunk must still be taken and stored.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, text

from relay.config import Settings
from schemas.chunks import TYPE_CHUNK, ChunkHeader, encode_chunk
from tests.relay_support import Agency, RelayProcess, add_agency, publish_many, wait_until
from tests.services import random_code

pytestmark = pytest.mark.integration

KiB = 1024
MiB = 1024 * KiB
#: The smallest intake the relay allows, so that a few MiB make it pause.
RELAY_SETTINGS = {"intake_max_bytes": MiB, "batch_wait_ms": 50}
CHUNKS = 60
CHUNK = 256 * KiB


def _stored(db: Engine, codes: list[str]) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM blob_chunks WHERE submitted_by = ANY(:codes)"),
                {"codes": codes},
            ).scalar_one()
        )


def _chunks(n: int) -> list[bytes]:
    data = os.urandom(n * CHUNK)
    sha = os.urandom(32).hex()
    return [
        encode_chunk(
            ChunkHeader(sha256=sha, size=len(data), offset=o, length=CHUNK), data[o : o + CHUNK]
        )
        for o in range(0, len(data), CHUNK)
    ]


def test_every_chunk_of_several_full_outboxes_is_stored_across_intake_pauses(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    agencies: list[Agency] = [add_agency(relay_env, db, random_code()) for _ in range(3)]
    codes = [a.code for a in agencies]
    relay.wait_consuming(codes)
    for agency in agencies:  # each outbox holds many times the intake limit
        publish_many(agency, _chunks(CHUNKS), message_type=TYPE_CHUNK)
    try:
        wait_until(lambda: _stored(db, codes) == 3 * CHUNKS, timeout=90, interval=0.5)
    except AssertionError:
        raise AssertionError(
            f"{_stored(db, codes)} of {3 * CHUNKS} chunks stored; relay log:\n"
            + "\n".join(line for line in relay.log_text().splitlines() if "unexpected" in line)[
                -2000:
            ]
        ) from None
    assert '"relay.unexpected_delivery"' not in relay.log_text()
