"""The operators' and auditors' pages: failures (with resend), agencies, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from relay.console import actions, audit
from relay.console.chart import bars
from relay.console.hub import load_agencies
from relay.console.i18n import Translator
from relay.console.roles import User
from relay.console.sessions import CSRF_FIELD, Session, csrf_ok
from relay.console.web import (
    client_address,
    console_of,
    forbidden,
    language,
    notice,
    render,
    safe_next,
    signed_in,
)
from relay.queries.failures import load_failures


def _with_notice(path: str, key: str, **values: object) -> str:
    base, _, query = path.partition("?")
    kept = [
        p for p in query.split("&") if p and not p.startswith(("notice=", "n=", "code=", "error="))
    ]
    extra = urlencode({"notice": key, **{k: str(v) for k, v in values.items()}})
    return f"{base}?{'&'.join([*kept, extra])}"


async def _failures(request: Request, user: User, session: Session) -> Response:
    if not user.watches_the_hub:
        return forbidden(request, user, session)
    console = console_of(request)

    def load() -> Any:
        with console.engine.connect() as conn:
            return load_failures(conn, limit=500)

    result = await run_in_threadpool(load)
    return render(
        request,
        "failures.html",
        {"failures": result, "notice": notice(request)},
        user=user,
        session=session,
    )


async def _resend(request: Request, user: User, session: Session) -> Response:
    form = await request.form()
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return forbidden(request, user, session, "csrf_text")
    if not user.may_act:
        return forbidden(request, user, session)
    console = console_of(request)
    document_id = str(form.get("document_id") or "")
    recipient = str(form.get("recipient") or "") or None
    back = safe_next(form.get("next"))
    outcome = await run_in_threadpool(
        actions.resend_document,
        console.settings,
        console.engine,
        user,
        document_id,
        recipient,
        client=client_address(request),
    )
    if not outcome.ok:
        target = _with_notice(back, "action_failed", error=outcome.error or "")
    elif outcome.changed:
        target = _with_notice(back, "resent_n", n=outcome.changed)
    else:
        target = _with_notice(back, "resent_none")
    return RedirectResponse(target, status_code=303)


async def _agencies(request: Request, user: User, session: Session) -> Response:
    if not user.watches_the_hub:
        return forbidden(request, user, session)
    console = console_of(request)

    def load() -> Any:
        with console.engine.connect() as conn:
            return load_agencies(
                conn,
                management_url=console.settings.management_url,
                vhost=console.settings.vhost,
                now=dt.datetime.now(dt.UTC),
            )

    result = await run_in_threadpool(load)
    t = Translator(language(request))
    answered = [a for a in result.agencies if a.median_to_01 is not None][:20]
    chart = (
        bars(
            [(a.code, round((a.median_to_01 or 0) / 60, 1)) for a in answered],
            title=t("answer_times"),
        )
        if answered
        else None
    )
    return render(
        request,
        "agencies.html",
        {"result": result, "chart": chart, "notice": notice(request)},
        user=user,
        session=session,
    )


async def _agency_state(request: Request, user: User, session: Session, suspend: bool) -> Response:
    form = await request.form()
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return forbidden(request, user, session, "csrf_text")
    if not user.may_act:
        return forbidden(request, user, session)
    console = console_of(request)
    code = str(form.get("code") or "")
    outcome = await run_in_threadpool(
        actions.set_agency_state,
        console.settings,
        console.engine,
        user,
        code,
        suspend=suspend,
        client=client_address(request),
    )
    if outcome.ok:
        target = _with_notice("/agencies", "suspended_ok" if suspend else "resumed_ok", code=code)
    else:
        target = _with_notice("/agencies", "action_failed", error=outcome.error or "")
    return RedirectResponse(target, status_code=303)


async def _suspend(request: Request, user: User, session: Session) -> Response:
    return await _agency_state(request, user, session, True)


async def _resume(request: Request, user: User, session: Session) -> Response:
    return await _agency_state(request, user, session, False)


async def _audit(request: Request, user: User, session: Session) -> Response:
    if not user.watches_the_hub:
        return forbidden(request, user, session)
    console = console_of(request)

    def load() -> Any:
        with console.engine.connect() as conn:
            return audit.recent(conn, limit=500)

    entries = await run_in_threadpool(load)
    return render(request, "audit.html", {"entries": entries}, user=user, session=session)


failures_page = signed_in(_failures)
resend_action = signed_in(_resend)
agencies_page = signed_in(_agencies)
suspend_action = signed_in(_suspend)
resume_action = signed_in(_resume)
audit_page = signed_in(_audit)
