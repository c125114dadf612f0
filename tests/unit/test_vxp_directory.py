"""The directory snapshot the relay publishes for adapters: versioned by content, compact."""

from __future__ import annotations

import datetime as dt

from relay.directory.model import Agency
from relay.directory.publish import snapshot_message_id, snapshot_of
from schemas.directory import decode_snapshot, encode_snapshot


def agency(code: str, host: str | None = None, state: str = "active") -> Agency:
    return Agency(code=code, name=f"Cơ quan {code}", host=host, state=state, strict_code=True)


def test_the_version_follows_the_content_not_the_order_or_the_time() -> None:
    rows = [agency("000.00.00.H41"), agency("000.41.01.H41", host="000.00.00.H41")]
    first = snapshot_of(rows, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    again = snapshot_of(list(reversed(rows)), dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert first.version == again.version
    suspended = snapshot_of([rows[0], agency("000.41.01.H41", "000.00.00.H41", "suspended")])
    assert suspended.version != first.version
    assert snapshot_message_id(first.version, "A") != snapshot_message_id(first.version, "B")


def test_a_large_directory_travels_gzip_compressed_and_reads_back() -> None:
    rows = [
        agency(f"{n // 10000:03d}.{n // 100 % 100:02d}.{n % 100:02d}.H41", host="000.00.00.H41")
        for n in range(20_000)
    ]
    snapshot = snapshot_of(rows)
    body = encode_snapshot(snapshot)
    assert body[:2] == b"\x1f\x8b"
    plain = snapshot.model_dump_json(by_alias=True, exclude_none=True).encode()
    assert len(body) * 5 < len(plain)
    assert decode_snapshot(body) == snapshot
    assert decode_snapshot(plain) == snapshot
