"""The web console over real HTTP, against a running ``lienthong console run`` and a real
database and broker (issue 19): roles, what a clerk may see, CSRF, the login rate limit, the
audit log, sessions, languages, the live document part."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, insert, select, update

from relay.config import Settings
from relay.console.app import create_app
from relay.db.engine import make_engine
from relay.db.tables import console_audit, console_users, deliveries, destinations, events
from tests.console_support import (
    PASSWORD,
    ConsoleProcess,
    Seeded,
    add_user,
    csrf_of,
    login,
    seed_document,
)
from tests.relay_support import Agency as BrokerAgency
from tests.relay_support import add_agency, drain
from tests.retry_support import run_cli
from tests.services import random_code

pytestmark = pytest.mark.integration


HOUR_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
IN_AN_HOUR = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


@dataclass(frozen=True)
class World:
    console: ConsoleProcess
    a: str  # the clerk's agency
    a_unit: str  # a unit hosted by A
    b: BrokerAgency
    c: BrokerAgency
    clerk_a: str
    clerk_b: str
    operator: str
    auditor: str
    b_to_c: Seeded  # neither A nor its unit is involved
    b_to_a_and_c: Seeded
    unit_to_b: Seeded
    failed_to_c: Seeded  # B -> C, C's delivery failed
    late_03: Seeded  # B -> C, C's 03 past its Decree 30 due time
    not_late: Seeded  # B -> C, C's 03 not due yet


@pytest.fixture(scope="module")
def world(relay_env: Settings, db: Engine) -> Iterator[World]:
    a, unit = random_code(), random_code()
    add_agency(relay_env, db, a, name="UBND Tỉnh Nghệ An")
    add_agency(relay_env, db, unit, name="Sở Tư pháp Nghệ An", host=a)
    b = add_agency(relay_env, db, random_code(), name="Bộ Nội vụ")
    c = add_agency(relay_env, db, random_code(), name="Bộ Tư pháp")
    world_docs = {
        "b_to_c": seed_document(db, b.code, {c.code: ["01", "03"]}, subject="Chỉ B và C"),
        "b_to_a_and_c": seed_document(
            db, b.code, {a: ["01", "03", "04"], c.code: ["02"]}, subject="B gửi A và C"
        ),
        "unit_to_b": seed_document(
            db,
            unit,
            {b.code: ["01"]},
            subject="Đơn vị của A gửi B",
            number=("77", "STP-VP"),
            priority=3,
            due_date=dt.date(2020, 1, 1),
        ),
        "failed_to_c": seed_document(db, b.code, {c.code: "failed"}, subject="Gửi lỗi tới C"),
        # Decree 30: C's 01 came, its 03 was due an hour ago; A's due times are ahead.
        "late_03": seed_document(
            db, b.code, {c.code: ["01"]}, subject="03 quá hạn", due_at=(HOUR_AGO, HOUR_AGO)
        ),
        "not_late": seed_document(
            db, b.code, {c.code: ["01"]}, subject="Chưa đến hạn", due_at=(HOUR_AGO, IN_AN_HOUR)
        ),
    }
    users = {
        "clerk_a": add_user(db, "clerk", a),
        "clerk_b": add_user(db, "clerk", b.code),
        "operator": add_user(db, "operator"),
        "auditor": add_user(db, "auditor"),
    }
    with ConsoleProcess(relay_env) as console:
        yield World(console=console, a=a, a_unit=unit, b=b, c=c, **users, **world_docs)


def _page(document_id: str) -> str:
    return "/documents/" + quote(document_id, safe="")


def _audit_rows(db: Engine, target: str) -> list[tuple[str, str, str]]:
    with db.connect() as conn:
        return [
            (r.username, r.action, r.outcome)
            for r in conn.execute(select(console_audit).where(console_audit.c.target == target))
        ]


def _state(db: Engine, seeded: Seeded, recipient: str) -> str:
    with db.connect() as conn:
        state: str = conn.execute(
            select(deliveries.c.state).where(
                deliveries.c.document_pk == seeded.document_pk,
                deliveries.c.recipient == recipient,
            )
        ).scalar_one()
    return state


def test_an_anonymous_visitor_is_sent_to_the_login_page(world: World) -> None:
    for path in ("/", "/documents", _page(world.b_to_c.document_id), "/failures", "/audit"):
        resp = httpx.get(world.console.url + path, follow_redirects=True)
        assert resp.url.path == "/login", path
        assert 'name="username"' in resp.text and 'name="password"' in resp.text
    assert "Đăng nhập" in resp.text  # Vietnamese first


def test_a_wrong_password_gets_no_session(world: World) -> None:
    with httpx.Client(base_url=world.console.url) as client:
        for name, password in ((world.clerk_a, "not-the-password"), ("nobody-here", PASSWORD)):
            resp = client.post("/login", data={"username": name, "password": password})
            assert resp.status_code == 401
            assert "lienthong_session" not in resp.headers.get("set-cookie", "")
            assert "Tên đăng nhập hoặc mật khẩu không đúng." in resp.text
        assert not client.cookies
        assert client.get("/documents").status_code == 303


def test_the_session_cookie_is_signed_httponly_and_samesite(world: World) -> None:
    with httpx.Client(base_url=world.console.url) as client:
        resp = client.post("/login", data={"username": world.clerk_a, "password": PASSWORD})
        assert resp.status_code == 303
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith("lienthong_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        value = client.cookies["lienthong_session"]
        assert client.get("/documents").status_code == 200
        # The value names the user; changing it (to become someone else) breaks the signature.
        forged = value.replace(value[2], "A" if value[2] != "A" else "B", 1)
        client.cookies.set("lienthong_session", forged)
        assert client.get("/documents").status_code == 303


def test_a_clerk_of_a_gets_404_for_a_document_of_b_and_c(world: World) -> None:
    clerk = login(world.console.url, world.clerk_a)
    no_such_id = f"{world.b.code},2026/11/30,{uuid.uuid4().hex}/KHONG-CO"
    hidden = clerk.get(_page(world.b_to_c.document_id))
    absent = clerk.get(_page(no_such_id))
    assert hidden.status_code == absent.status_code == 404
    assert world.b_to_c.document_id not in hidden.text
    assert "Chỉ B và C" not in hidden.text
    # The same page as for a document that does not exist (but for the id asked, in a link).
    assert hidden.text.replace(quote(world.b_to_c.document_id), "ID") == absent.text.replace(
        quote(no_such_id), "ID"
    )
    live = clerk.get("/live" + _page(world.b_to_c.document_id), params={"v": ""})
    assert live.status_code == 404
    listing = clerk.get("/documents", params={"subject": "Chỉ B và C"})
    assert listing.status_code == 200 and world.b_to_c.document_id not in listing.text
    # The clerk of B sees it.
    assert (
        login(world.console.url, world.clerk_b).get(_page(world.b_to_c.document_id)).status_code
        == 200
    )


def test_a_clerk_sees_only_its_own_row_of_a_document_it_received(world: World) -> None:
    clerk = login(world.console.url, world.clerk_a)
    resp = clerk.get(_page(world.b_to_a_and_c.document_id))
    assert resp.status_code == 200
    assert f'data-recipient="{world.a}"' in resp.text
    assert f'data-recipient="{world.c.code}"' not in resp.text
    assert "04 Phân công" in resp.text
    # The sender sees every recipient.
    sender = login(world.console.url, world.clerk_b).get(_page(world.b_to_a_and_c.document_id))
    assert f'data-recipient="{world.c.code}"' in sender.text and "02 Từ chối" in sender.text


def test_a_clerk_sees_what_a_unit_its_agency_hosts_sent(world: World) -> None:
    clerk = login(world.console.url, world.clerk_a)
    listing = clerk.get("/documents", params={"direction": "sent"})
    assert world.unit_to_b.document_id in listing.text
    assert world.b_to_a_and_c.document_id not in listing.text
    assert "Hỏa tốc" in listing.text  # Priority 3
    page = clerk.get(_page(world.unit_to_b.document_id))
    assert page.status_code == 200
    assert "77/STP-VP" in page.text and "Quá hạn" in page.text  # due 2020-01-01, only 01
    received = clerk.get("/documents", params={"direction": "received"})
    assert world.b_to_a_and_c.document_id in received.text
    assert world.unit_to_b.document_id not in received.text


def test_a_recipient_late_with_its_03_by_decree_30_due_times_is_marked_overdue(
    world: World,
) -> None:
    op = login(world.console.url, world.operator)
    late = op.get(_page(world.late_03.document_id))
    assert late.status_code == 200 and 'class="overdue"' in late.text
    not_late = op.get(_page(world.not_late.document_id))
    assert not_late.status_code == 200 and 'class="overdue"' not in not_late.text


def test_documents_are_searched_by_number_subject_counterpart_state_and_date(
    world: World,
) -> None:
    op = login(world.console.url, world.operator)

    def found(**params: str) -> bool:
        text = op.get("/documents", params=params).text
        return world.unit_to_b.document_id in text

    assert found(number="77/STP") and not found(number="9999/KHONG")
    assert found(subject="đơn vị của a") and not found(subject="không có trích yếu này")
    assert found(counterpart="Bộ Nội vụ") and found(counterpart=world.a_unit)
    assert not found(counterpart="Cơ quan không tồn tại")
    assert found(state="delivered") and not found(state="refused")
    today = dt.date.today()
    assert found(date_from=(today - dt.timedelta(days=1)).isoformat())
    assert not found(date_to=(today - dt.timedelta(days=3)).isoformat())
    assert found(document_id=world.unit_to_b.document_id[-10:])
    typo = op.get("/documents", params={"date_from": "30/11/2026", "subject": "đơn vị của a"})
    assert typo.status_code == 200 and "Từ ngày: ngày không hợp lệ" in typo.text


def test_only_operators_and_auditors_open_the_hubs_pages(world: World) -> None:
    clerk = login(world.console.url, world.clerk_a)
    auditor = login(world.console.url, world.auditor)
    for path in ("/failures", "/agencies", "/audit"):
        assert clerk.get(path).status_code == 403, path
        assert auditor.get(path).status_code == 200, path
    agencies = auditor.get("/agencies").text
    assert world.b.code in agencies and "Bộ Nội vụ" in agencies


def test_an_auditor_sees_everything_but_cannot_resend(world: World, db: Engine) -> None:
    auditor = login(world.console.url, world.auditor)
    page = auditor.get(_page(world.failed_to_c.document_id))
    assert page.status_code == 200 and "Gửi lỗi" in page.text
    assert 'action="/resend"' not in page.text
    failures = auditor.get("/failures")
    assert (
        world.failed_to_c.document_id in failures.text and 'action="/resend"' not in failures.text
    )
    # deliveries.attempts counts copies that came back, not publishes: the column says so
    assert "<th>Số lần gửi lỗi</th>" in failures.text
    resp = auditor.post(
        "/resend",
        data={"csrf_token": csrf_of(page.text), "document_id": world.failed_to_c.document_id},
    )
    assert resp.status_code == 403
    assert _state(db, world.failed_to_c, world.c.code) == "failed"
    assert _audit_rows(db, world.failed_to_c.document_id) == []


def test_a_change_without_the_right_csrf_token_is_refused(world: World, db: Engine) -> None:
    op = login(world.console.url, world.operator)
    form = {"document_id": world.failed_to_c.document_id, "recipient": world.c.code}
    assert op.post("/resend", data=form).status_code == 403
    assert op.post("/resend", data={**form, "csrf_token": "forged"}).status_code == 403
    # Another user's token is no good either.
    other = login(world.console.url, world.auditor)
    token = csrf_of(other.get("/documents").text)
    assert op.post("/resend", data={**form, "csrf_token": token}).status_code == 403
    assert op.post("/agencies/suspend", data={"code": world.c.code}).status_code == 403
    assert _state(db, world.failed_to_c, world.c.code) == "failed"
    assert _audit_rows(db, world.failed_to_c.document_id) == []
    assert _audit_rows(db, world.c.code) == []


def test_an_operators_resend_is_published_and_appears_in_the_audit_log(
    world: World, db: Engine
) -> None:
    op = login(world.console.url, world.operator)
    page = op.get("/failures")
    assert 'action="/resend"' in page.text
    resp = op.post(
        "/resend",
        data={
            "csrf_token": csrf_of(page.text),
            "document_id": world.failed_to_c.document_id,
            "recipient": world.c.code,
            "next": "/failures",
        },
    )
    assert resp.status_code == 303
    assert "notice=resent_n" in resp.headers["location"]
    assert _state(db, world.failed_to_c, world.c.code) == "queued"
    # the seeded document is urgent (priority 1): its copy goes again to C's urgent lane
    copies = [m for m in drain(world.c, expect=1, timeout=10, urgent=True) if m.type == "document"]
    assert len(copies) == 1
    assert _audit_rows(db, world.failed_to_c.document_id) == [(world.operator, "resend", "done")]
    audit_page = login(world.console.url, world.auditor).get("/audit").text
    assert world.operator in audit_page and world.failed_to_c.document_id in audit_page
    # Nothing failed any more: a second resend changes nothing and says so, on the record too.
    again = op.post(
        "/resend",
        data={"csrf_token": csrf_of(page.text), "document_id": world.failed_to_c.document_id},
    )
    assert "notice=resent_none" in again.headers["location"]
    assert (world.operator, "resend", "nothing") in _audit_rows(db, world.failed_to_c.document_id)


def test_an_operator_suspends_and_resumes_an_agency_on_the_record(world: World, db: Engine) -> None:
    op = login(world.console.url, world.operator)
    token = csrf_of(op.get("/agencies").text)
    assert (
        op.post("/agencies/suspend", data={"csrf_token": token, "code": world.c.code}).status_code
        == 303
    )
    assert 'action="/agencies/resume"' in op.get("/agencies").text
    assert (
        op.post("/agencies/resume", data={"csrf_token": token, "code": world.c.code}).status_code
        == 303
    )
    assert _audit_rows(db, world.c.code) == [
        (world.operator, "suspend", "done"),
        (world.operator, "resume", "done"),
    ]
    clerk = login(world.console.url, world.clerk_a)
    token = csrf_of(clerk.get("/documents").text)
    assert (
        clerk.post(
            "/agencies/suspend", data={"csrf_token": token, "code": world.c.code}
        ).status_code
        == 403
    )


def test_the_live_part_answers_204_until_a_status_arrives(world: World, db: Engine) -> None:
    clerk = login(world.console.url, world.clerk_b)
    seeded = seed_document(db, world.b.code, {world.c.code: ["01"]}, subject="Theo dõi trực tiếp")
    page = clerk.get(_page(seeded.document_id)).text
    version = page.split('data-version="', 1)[1].split('"', 1)[0]
    live = "/live" + _page(seeded.document_id)
    assert clerk.get(live, params={"v": version}).status_code == 204
    with db.begin() as conn:
        did = conn.execute(
            select(deliveries.c.id).where(deliveries.c.document_pk == seeded.document_pk)
        ).scalar_one()
        conn.execute(
            insert(events).values(
                document_pk=seeded.document_pk,
                delivery_id=did,
                kind="status",
                status_code="03",
                actor=world.c.code,
                message_id=str(uuid.uuid4()),
            )
        )
        conn.execute(update(deliveries).where(deliveries.c.id == did).values(state="accepted"))
    changed = clerk.get(live, params={"v": version})
    assert changed.status_code == 200
    assert "03 Đã tiếp nhận" in changed.json()["html"]
    assert changed.json()["version"] != version


def test_login_attempts_are_rate_limited(world: World, db: Engine) -> None:
    name = add_user(db, "clerk", world.a)
    with httpx.Client(base_url=world.console.url) as client:
        codes = [
            client.post("/login", data={"username": name, "password": f"guess-{n}"}).status_code
            for n in range(5)
        ]
        assert codes == [401] * 5
        limited = client.post("/login", data={"username": name, "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "lienthong_session" not in limited.headers.get("set-cookie", "")
        assert "Đăng nhập sai quá nhiều lần" in limited.text
    # Other users are not locked out by it.
    assert login(world.console.url, world.clerk_b).get("/documents").status_code == 200


def test_a_login_posted_from_another_site_is_refused(world: World) -> None:
    resp = httpx.post(
        world.console.url + "/login",
        data={"username": world.operator, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status_code == 403 and "lienthong_session" not in resp.headers.get("set-cookie", "")


def test_pages_are_vietnamese_first_and_english_on_request(world: World) -> None:
    clerk = login(world.console.url, world.clerk_b)
    page = _page(world.b_to_a_and_c.document_id)
    vi = clerk.get(page).text
    assert '<html lang="vi">' in vi and "Trạng thái mới nhất" in vi and "02 Từ chối" in vi
    en = clerk.get(page, params={"lang": "en"})
    assert '<html lang="en">' in en.text and "Latest status" in en.text
    assert "lienthong_lang=en" in en.headers["set-cookie"]
    assert "Latest status" in clerk.get(page).text  # the cookie keeps the choice
    clerk.get(page, params={"lang": "vi"})


def test_the_user_commands_add_list_and_disable(
    world: World, relay_env: Settings, db: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    name = f"vanthu-{uuid.uuid4().hex[:6]}"
    code, out = run_cli(
        relay_env,
        "console",
        "user",
        "add",
        name,
        "--role",
        "clerk",
        "--agency",
        world.a,
        "--password-file",
        str(secret),
    )
    assert code == 0, out
    code, out = run_cli(
        relay_env, "console", "user", "add", "x1", "--role", "clerk", "--password-file", str(secret)
    )
    assert code != 0 and "a clerk belongs to an agency" in out
    code, out = run_cli(relay_env, "console", "user", "list")
    assert code == 0 and name in out and world.a in out
    with db.connect() as conn:
        stored = conn.execute(
            select(console_users.c.password_hash).where(console_users.c.name == name)
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    client = login(world.console.url, name)
    assert client.get("/documents").status_code == 200
    code, out = run_cli(relay_env, "console", "user", "disable", name)
    assert code == 0, out
    assert client.get("/documents").status_code == 303  # the open session ends at once
    again = httpx.post(world.console.url + "/login", data={"username": name, "password": PASSWORD})
    assert again.status_code == 401


def test_the_failures_page_shows_destinations_that_are_down(world: World, db: Engine) -> None:
    down = random_code()
    with db.begin() as conn:
        conn.execute(
            insert(destinations).values(
                code=down,
                state="down",
                consecutive_failures=7,
                down_since=dt.datetime.now(dt.UTC),
                last_error="inbox rejected 7 deliveries in a row",
            )
        )
    page = login(world.console.url, world.auditor).get("/failures").text
    assert "Nơi nhận ngừng hoạt động" in page
    assert down in page and "inbox rejected 7 deliveries in a row" in page


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_without_its_database_the_console_says_so(relay_env: Settings) -> None:
    gone = relay_env.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x"}
    )
    code, out = run_cli(gone, "console", "run", "--listen", "127.0.0.1:1")
    assert code == 1 and "PostgreSQL at" in out and "is unreachable" in out
    # While it runs, a page that needs the database answers 503 with a page saying why.
    engine = make_engine(gone.database_url)

    async def sign_in() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gone, engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            return await client.post("/login", data={"username": "x", "password": "y" * 10})

    try:
        resp = asyncio.run(sign_in())
    finally:
        engine.dispose()
    assert resp.status_code == 503 and "Không kết nối được cơ sở dữ liệu" in resp.text
