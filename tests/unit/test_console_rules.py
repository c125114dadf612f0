"""The console's pure rules: login rate limit, header extraction, overdue marks, roles, words."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from relay.console.audit import Entry
from relay.console.deadlines import overdue
from relay.console.documents import DocumentView, RecipientView, Step, SubmissionView
from relay.console.headers import Headers, parse
from relay.console.i18n import MESSAGES, STATES, Translator
from relay.console.listen import parse_listen
from relay.console.ratelimit import LoginLimiter
from relay.console.roles import AUDITOR, CLERK, OPERATOR, User
from relay.console.sessions import SessionSigner, csrf_ok
from relay.console.web import safe_next, template_environment
from relay.domain import states
from relay.errors import InvalidInput

TEMPLATES = Path(__file__).parents[2] / "relay" / "console" / "templates"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_locked_after_five_failures_until_the_window_passes() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for _ in range(5):
        assert limiter.retry_after("vanthu", "10.0.0.1") == 0
        limiter.failed("vanthu", "10.0.0.1")
    assert limiter.retry_after("vanthu", "10.0.0.2") == pytest.approx(300)
    assert limiter.retry_after("VanThu", "10.0.0.3") > 0  # names are not case-sensitive
    assert limiter.retry_after("someone-else", "10.0.0.1") == 0
    clock.now += 300.5
    assert limiter.retry_after("vanthu", "10.0.0.1") == 0


def test_one_client_spraying_names_is_locked_too() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for n in range(20):
        limiter.failed(f"name-{n}", "10.0.0.9")
    assert limiter.retry_after("a-fresh-name", "10.0.0.9") > 0
    assert limiter.retry_after("a-fresh-name", "10.0.0.8") == 0


def test_a_correct_password_clears_the_names_failures() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(4):
        limiter.failed("vanthu", "10.0.0.1")
    limiter.succeeded("vanthu")
    limiter.failed("vanthu", "10.0.0.1")
    assert limiter.retry_after("vanthu", "10.0.0.1") == 0


def test_headers_are_read_from_a_stored_submission() -> None:
    payload = json.dumps(
        {
            "schema": "lienthong.document/1",
            "code": {"code_number": "1234", "code_notation": "VPCP-KSTT"},
            "promulgation_info": {"place": "Hà Nội", "promulgation_date": "2016-04-08"},
            "other_info": {"priority": 3},
            "due_date": "2016-04-20",
        },
        ensure_ascii=False,
    ).encode()
    assert parse(payload) == Headers(
        code_number="1234",
        code_notation="VPCP-KSTT",
        priority=3,
        promulgation_date=dt.date(2016, 4, 8),
        due_date=dt.date(2016, 4, 20),
    )


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1, 2]", b'{"code": "x", "other_info": {"priority": "high"}}', b"\xff"],
)
def test_a_payload_the_console_cannot_read_gives_empty_headers(payload: bytes) -> None:
    assert parse(payload) == Headers()


def test_an_open_delivery_past_its_due_date_is_overdue_and_a_finished_one_is_not() -> None:
    today = dt.date(2026, 11, 30)
    due = dt.date(2026, 11, 29)
    assert overdue(states.PROCESSING, due, today)
    assert overdue(states.FAILED, due, today)
    assert not overdue(states.COMPLETED, due, today)
    assert not overdue(states.REFUSED, due, today)
    assert not overdue(states.PROCESSING, today, today)
    assert not overdue(states.PROCESSING, None, today)


def test_only_operators_act_and_clerks_see_their_agency_only() -> None:
    operator, clerk, auditor = (
        User("o", OPERATOR, None),
        User("c", CLERK, "000.00.00.H26"),
        User("a", AUDITOR, None),
    )
    assert operator.may_act and not clerk.may_act and not auditor.may_act
    assert operator.sees_everything and auditor.sees_everything and not clerk.sees_everything


def test_a_session_cookie_cannot_be_forged_or_read_with_another_key() -> None:
    signer = SessionSigner("key one", 3600)
    session, value = signer.new("vanthu")
    assert signer.read(value) == session
    assert SessionSigner("key two", 3600).read(value) is None
    assert signer.read(value[:-2] + "xx") is None
    assert signer.read("") is None and signer.read(None) is None
    assert (
        csrf_ok(session, session.csrf) and not csrf_ok(session, "x") and not csrf_ok(session, None)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000))],
)
def test_listen_is_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8080", "localhost", "host:0", "host:99999", ":80"])
def test_a_bad_listen_address_says_what_is_expected(value: str) -> None:
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        parse_listen(value)


def test_every_word_the_templates_use_is_translated_in_both_languages() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*"([a-z_0-9]+)"\s*[,)]""", path.read_text("utf-8")))
    assert used, "the pattern found no words; the templates changed their syntax"
    assert sorted(used - set(MESSAGES)) == []
    for key, (vi, en) in MESSAGES.items():
        assert vi and en, key


def test_every_delivery_state_has_a_vietnamese_name() -> None:
    known = {v for k, v in vars(states).items() if k.isupper() and isinstance(v, str)}
    known = {s for s in known if s in states.PROGRESS_RANK or s in states.FINAL_STATES} | {
        states.RECALL_REQUESTED
    }
    assert sorted(known - set(STATES)) == []
    assert Translator("vi").state("completed") == "Hoàn thành"
    assert Translator("en").state("completed") == "Completed"
    assert Translator("fr").lang == "vi"


def _render(name: str, **context: object) -> str:
    base = {
        "t": Translator("vi"),
        "lang": "vi",
        "switch_language": "/?lang=en",
        "user": User("vanhanh", OPERATOR, None),
        "csrf_field": "csrf_token",
        "csrf": "token",
        "path": "/",
        "notice": None,
    }
    return template_environment().get_template(name).render(**{**base, **context})


def test_the_audit_page_shows_entries_with_and_without_an_error() -> None:
    at = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    entries = [
        Entry(at, "vanhanh", "resend", "DOC-1", "done", {"recipient": "000.00.00.H29"}, None),
        Entry(at, "vanhanh", "suspend", "000.00.00.G12", "nothing", {}, "10.0.0.1"),
        Entry(at, "vanhanh", "resend", "DOC-2", "failed", {"error": "RabbitMQ is down"}, None),
        Entry(at, "vanhanh", "resume", "000.00.00.G12", "done", None, None),
    ]
    html = _render("audit.html", entries=entries)
    assert "DOC-1 → 000.00.00.H29" in html and "Không thành công: RabbitMQ is down" in html
    assert "30/11/2026 15:00:00" in html  # shown in Vietnam's time


def test_a_document_page_marks_overdue_rows_and_offers_resend_only_for_failed_ones() -> None:
    at = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)

    def row(code: str, state: str, overdue_: bool) -> RecipientView:
        return RecipientView(
            recipient=code,
            recipient_name=None,
            route_to=code,
            state=state,
            attempts=1,
            last_error=None,
            latest_code=None,
            latest_name=None,
            latest_at=None,
            steps=[Step("queued", "Đã chuyển", at), Step("01", "Đã đến", None)],
            events=[],
            overdue=overdue_,
        )

    submission = SubmissionView(
        message_id="m",
        business="Văn bản mới",
        business_type=0,
        sender="000.00.00.G22",
        sender_name=None,
        submitted_by="000.00.00.G22",
        subject=None,
        received_at=at,
        headers=Headers(priority=2),
        events=[],
        recipients=[row("A", "failed", True), row("B", "completed", False)],
    )
    html = _render("_submissions.html", doc=DocumentView("DOC", [submission]))
    assert html.count('class="overdue"') == 1 and html.count('action="/resend"') == 1
    assert "Thượng khẩn" in html


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "https://evil.example",
        "",
        None,
        "/ok\\..",
        "/x\n/y",
    ],
)
def test_after_login_a_visitor_is_never_sent_to_another_site(value: object) -> None:
    assert safe_next(value) == "/documents"


def test_after_login_a_visitor_goes_back_to_the_page_asked_for() -> None:
    assert safe_next("/documents/a%2Fb?lang=en") == "/documents/a%2Fb?lang=en"


def test_answer_times_read_as_a_person_says_them() -> None:
    vi, en = Translator("vi"), Translator("en")
    assert [vi.duration(s) for s in (None, 12, 210, 7200)] == [
        "—",
        "12 giây",
        "3,5 phút",
        "2,0 giờ",
    ]
    assert en.duration(210) == "3.5 min"
