"""The web console in a real browser (Playwright driving Debian's Chromium) against the real
relay, broker and database (issue 19): a clerk follows a document's recipients and sees a status
arrive without reloading; an operator resends a failed delivery and sees it delivered.

Screenshots go to ``tests/artifacts/`` (ignored by git); their paths are printed. Without
``/usr/bin/chromium`` (``apt-get install chromium``; another path in
``LIENTHONG_TEST_CHROMIUM``) or the playwright package the tests are skipped, and fail under
``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import console_audit, deliveries, documents
from tests.conftest import EnvFactory
from tests.console_support import PASSWORD, ConsoleProcess, add_user
from tests.relay_support import (
    ROOT,
    Agency,
    RelayProcess,
    add_agency,
    make_document,
    make_status,
    publish,
    wait_until,
)
from tests.retry_support import Agency as RetryAgency
from tests.retry_support import FakeAdapter, running_adapter
from tests.services import random_code

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("LIENTHONG_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
#: The relay and the console share two cores with the broker and PostgreSQL: be patient.
WAIT_MS = 45_000

#: A returned delivery fails at once, so the test has one to resend.
RELAY_SETTINGS: dict[str, Any] = {
    "agency_poll_seconds": 0.2,
    "batch_wait_ms": 5,
    "retry_base_seconds": 0.2,
    "retry_max_seconds": 1.0,
    "retry_max_attempts": 1,
    "retry_tick_seconds": 0.1,
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs a browser for the console tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}; install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing; run `make install`")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield b
        b.close()


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    relay: RelayProcess
    console: ConsoleProcess


@pytest.fixture(scope="module")
def hub(make_env: EnvFactory) -> Iterator[Hub]:
    settings = make_env().model_copy(update=RELAY_SETTINGS)
    engine = make_engine(settings.database_url)
    try:
        with RelayProcess(settings) as relay, ConsoleProcess(settings) as console:
            yield Hub(settings, engine, relay, console)
    finally:
        engine.dispose()


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _sign_in(browser: Any, url: str, name: str) -> Any:
    context = browser.new_context(locale="vi-VN", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url + "/documents")
    assert page.url.startswith(url + "/login")  # anonymous: sent to the login page
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(url + "/documents")
    return page


def _state(engine: Engine, document_id: str, recipient: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(deliveries.c.state)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.document_id == document_id, deliveries.c.recipient == recipient)
        ).scalar()


def _agencies(hub: Hub, n: int) -> list[Agency]:
    return [add_agency(hub.settings, hub.engine, random_code()) for _ in range(n)]


def test_a_clerk_follows_five_recipients_and_a_status_appears_without_reload(
    browser: Any, hub: Hub
) -> None:
    from playwright.sync_api import expect

    sender, r1, r2, r3, r4 = _agencies(hub, 5)
    unit = add_agency(hub.settings, hub.engine, random_code(), name="Sở Nội vụ", host=r1.code)
    hub.relay.wait_consuming([a.code for a in (sender, r1, r2, r3, r4)])
    recipients = [r1.code, unit.code, r2.code, r3.code, r4.code]
    doc = make_document(sender.code, recipients)
    publish(sender, doc)
    wait_until(lambda: _state(hub.engine, doc.document_id, r4.code) == "queued", timeout=60)
    # Each recipient answers as its DMS would; the unit's statuses come through its host.
    histories = [
        (r1, r1.code, ["01", "03", "04", "05", "06"]),
        (r1, unit.code, ["01", "03", "04"]),
        (r2, r2.code, ["01", "03"]),
        (r3, r3.code, ["01", "02"]),
    ]
    for agency, code, codes in histories:
        for status in codes:
            publish(agency, make_status(code, sender.code, doc.document_id, status))
    expected = {
        r1.code: "completed",
        unit.code: "assigned",
        r2.code: "accepted",
        r3.code: "refused",
        r4.code: "queued",
    }
    wait_until(
        lambda: all(_state(hub.engine, doc.document_id, c) == s for c, s in expected.items()),
        timeout=60,
    )

    clerk = add_user(hub.engine, "clerk", sender.code)
    page = _sign_in(browser, hub.console.url, clerk)
    page.click(f"a[href*='{doc.document_id.split(',')[-1].split('/')[0]}']")
    rows = page.locator("tr.recipient")
    expect(rows).to_have_count(5)
    for code, state in expected.items():
        expect(page.locator(f"tr.recipient[data-recipient='{code}']")).to_have_attribute(
            "data-state", state
        )
    expect(page.locator(f"tr[data-recipient='{r1.code}'] td.latest")).to_contain_text(
        "06 Hoàn thành"
    )
    expect(page.locator(f"tr[data-recipient='{r3.code}'] td.latest")).to_contain_text("02 Từ chối")
    expect(page.locator(f"tr[data-recipient='{unit.code}'] td.latest")).to_contain_text(
        "04 Phân công"
    )
    expect(page.locator(f"tr[data-recipient='{r4.code}'] td.latest")).to_have_text("—")

    # A status arrives while the page is open: it appears without a reload.
    page.evaluate("window.__still_the_same_page = true")
    publish(r4, make_status(r4.code, sender.code, doc.document_id, "01"))
    expect(page.locator(f"tr[data-recipient='{r4.code}'] td.latest")).to_contain_text(
        "01 Đã đến", timeout=WAIT_MS
    )
    assert page.evaluate("window.__still_the_same_page === true"), "the page was reloaded"
    _shot(page, "console-document-five-recipients.png")
    page.context.close()


def test_an_operator_resends_a_failed_delivery_and_sees_it_delivered(
    browser: Any, hub: Hub
) -> None:
    from playwright.sync_api import expect

    sender, target = _agencies(hub, 2)
    hub.relay.wait_consuming([sender.code, target.code])
    assert target.password is not None
    fake = FakeAdapter(
        hub.settings,
        hub.engine,
        RetryAgency(target.code, target.password),
        accept=lambda message_id, n: n > 1,  # the first copy is refused, the resent one taken
        report_01=True,
    )
    with running_adapter(fake):
        doc = make_document(sender.code, [target.code])
        publish(sender, doc)
        wait_until(lambda: _state(hub.engine, doc.document_id, target.code) == "failed", timeout=60)
        operator = add_user(hub.engine, "operator")
        page = _sign_in(browser, hub.console.url, operator)
        page.goto(hub.console.url + "/failures")
        row = page.locator(f"tr.failure[data-recipient='{target.code}']").filter(
            has_text=doc.document_id
        )
        expect(row).to_have_attribute("data-state", "failed")
        _shot(page, "console-failures.png")
        row.locator("button.resend").click()
        expect(page.locator("p.notice.ok")).to_contain_text("Đã gửi lại 1")
        # The delivery is no longer failed, so it left this page: open the document.
        page.goto(f"{hub.console.url}/documents/{quote(doc.document_id, safe='')}")
        expect(page.locator(f"tr[data-recipient='{target.code}']")).to_have_attribute(
            "data-state", "delivered", timeout=WAIT_MS
        )
        expect(page.locator(f"tr[data-recipient='{target.code}'] td.latest")).to_contain_text(
            "01 Đã đến"
        )
        _shot(page, "console-resent-delivered.png")
        page.goto(hub.console.url + "/audit")
        entry = page.locator("tr.entry[data-action='resend']").filter(has_text=doc.document_id)
        expect(entry).to_contain_text(operator)
        _shot(page, "console-audit.png")
        page.goto(hub.console.url + "/agencies")
        expect(page.locator(f"tr[data-code='{target.code}']")).to_be_visible()
        _shot(page, "console-agencies.png")
        page.context.close()
    with hub.engine.connect() as conn:
        audited = conn.execute(
            select(console_audit.c.username, console_audit.c.outcome).where(
                console_audit.c.target == doc.document_id
            )
        ).all()
    assert [tuple(a) for a in audited] == [(operator, "done")]
