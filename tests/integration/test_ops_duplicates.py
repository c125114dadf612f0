"""Phụ lục VI III.1.h through the relay: delivered, and flagged to the sender and in trace."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from relay.config import Settings
from schemas import Document
from schemas.document import Code, PromulgationInfo
from tests.relay_support import (
    RelayProcess,
    add_agency,
    drain,
    make_document,
    publish,
    settings_env,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

LIENTHONG = [sys.executable, "-c", "from lienthong.cli import main; main()"]


def numbered(sender: str, recipient: str, document_id: str) -> Document:
    doc = make_document(sender, [recipient], document_id=document_id)
    doc.code = Code(code_number="15", code_notation="UBND-VX")
    doc.promulgation_info = PromulgationInfo(promulgation_date=dt.date(2026, 11, 30))
    return doc


def test_a_second_document_with_the_same_number_and_date_is_delivered_but_flagged(
    relay_env: Settings, db: Engine
) -> None:
    with RelayProcess(relay_env) as relay:
        a = add_agency(relay_env, db, random_code())
        b = add_agency(relay_env, db, random_code())
        relay.wait_consuming([a.code, b.code])
        first = numbered(a.code, b.code, f"{a.code},2026/11/30,15/UBND-VX")
        second = numbered(a.code, b.code, f"{a.code},2026/11/30,15/UBND-VX#resent")
        publish(a, first)
        receipts = [json.loads(r.body) for r in drain(a, expect=1)]
        assert receipts[0]["duplicate_of"] is None
        publish(a, second)
        receipts = [json.loads(r.body) for r in drain(a, expect=1)]
        assert receipts[0]["kind"] == "accepted"
        assert receipts[0]["duplicate_of"] == first.document_id
        assert "Phụ lục VI III.1.h" in receipts[0]["reason"]
        # Both reach the recipient.
        assert len(drain(b, expect=2)) == 2

    out = subprocess.run(
        [*LIENTHONG, "trace", "--json", second.document_id],
        env=settings_env(relay_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"duplicate"' in out.stdout and first.document_id in out.stdout
