"""The demo's pure parts: its cast, its messages, its verdict and its preflight messages."""

from __future__ import annotations

import socket

from lienthong.demo import preflight
from lienthong.demo import scenario as sc
from lienthong.demo.environment import demo_settings
from lienthong.demo.report import DeliveryRow, mismatches, render_table
from relay.config import Settings
from schemas import BusinessType, Document, Status, decode_message
from schemas.envelope import encode_message


def _row(btype: int, recipient: str, state: str, last: str | None) -> DeliveryRow:
    return DeliveryRow(
        document_id=sc.DOCUMENT_ID,
        business_type=btype,
        recipient=recipient,
        name="X",
        route_to=recipient,
        state=state,
        attempts=1,
        last_status=last,
    )


def test_the_cast_comes_from_the_2016_directory_with_hanoi_hosting_two_units() -> None:
    cast = sc.cast()
    assert [a.code for a in cast if a.host is None] == list(sc.CONNECTED)
    assert {a.code: a.host for a in cast if a.host} == {u: sc.HANOI for u in sc.HANOI_UNITS}
    assert sc.route_of(cast, "000.00.21.H26") == sc.HANOI
    assert next(a.name for a in cast if a.code == sc.SENDER) == "Văn phòng Chính phủ"


def test_the_demo_messages_survive_the_wire_encoding() -> None:
    cast = sc.cast()
    new = decode_message(encode_message(sc.new_document(cast)), expect="document")
    revoke = decode_message(encode_message(sc.revoke_document(cast)), expect="document")
    status = decode_message(encode_message(sc.status(cast, sc.HCMC, "04")), expect="status")
    assert isinstance(new, Document)
    assert isinstance(revoke, Document)
    assert isinstance(status, Status)
    assert new.recipient_codes() == list(sc.RECIPIENTS)
    assert new.attachments[0].size > 0
    assert revoke.business_type is BusinessType.REVOKE
    assert revoke.document_id == new.document_id
    assert revoke.recipient_codes() == [sc.REVOKED_AT]
    assert status.response_for.organ_id == sc.SENDER
    assert status.sender.organ_id == sc.HCMC


def test_a_delivery_in_another_state_or_missing_is_named_in_the_verdict() -> None:
    rows = [
        _row(0, sc.HANOI, "completed", "06"),
        _row(0, sc.HANOI_UNITS[0], "processing", "05"),
        _row(0, sc.HCMC, "completed", "06"),
        _row(0, sc.MINISTRY, "refused", "02"),
    ]
    problems = mismatches(rows, sc.EXPECTED_STATES)
    assert problems == [
        "Văn bản mới → 000.00.21.H26 X: state processing (expected completed), "
        "last status 05 Đang xử lý",
        "Thu hồi → 000.00.00.H29: no delivery recorded (expected delivered)",
    ]
    rows.append(_row(1, sc.HCMC, "delivered", "01"))
    rows[1] = _row(0, sc.HANOI_UNITS[0], "completed", "06")
    assert mismatches(rows, sc.EXPECTED_STATES) == []
    assert "02 Từ chối" in render_table(rows)


def test_the_demo_uses_its_own_vhost_and_database_on_the_configured_servers() -> None:
    base = Settings(
        amqp_url="amqp://u:p@rabbit.example:5673/lienthong",
        database_url="postgresql+psycopg://pg:secret@db.example:5433/lienthong",
    )
    s = demo_settings(base, "lienthong-demo", "lienthong_demo")
    assert s.amqp_url == "amqp://u:p@rabbit.example:5673/lienthong-demo"
    assert s.vhost == "lienthong-demo"
    assert s.database_url == "postgresql+psycopg://pg:secret@db.example:5433/lienthong_demo"


def test_preflight_names_the_unreachable_service_its_url_and_how_to_start_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        amqp_url=f"amqp://guest:secret@127.0.0.1:{port}/v",
        management_url=f"http://guest:secret@127.0.0.1:{port}",
        database_url=f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/d",
    )
    failed = preflight.check(preflight.endpoints(settings), timeout=1.0)
    text = "\n".join(f.explain() for f in failed)
    assert [f.endpoint.name for f in failed] == [
        "RabbitMQ (AMQP)",
        "RabbitMQ management API",
        "PostgreSQL",
    ]
    assert f"amqp://guest@127.0.0.1:{port}/v" in text
    assert "rabbitmq-server -detached" in text
    assert "rabbitmq-plugins enable rabbitmq_management" in text
    assert "pg_ctlcluster" in text
    assert "make up" in text
    assert "secret" not in text
