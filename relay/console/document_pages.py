"""``/documents``, ``/documents/{document_id}`` and its live part."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.console.chart import bars
from relay.console.documents import (
    DIRECTIONS,
    VIETNAM,
    DocumentView,
    Filters,
    in_view,
    list_documents,
    load_document,
    per_day,
    version,
)
from relay.console.i18n import STATES, Translator
from relay.console.roles import User
from relay.console.scope import scope_of
from relay.console.sessions import Session
from relay.console.web import console_of, language, not_found, notice, render, signed_in
from relay.domain import states
from relay.errors import NotFound

CHART_DAYS = 14


#: Beyond this a page number is a typo (50 documents a page).
MAX_PAGE = 10_000


def _filters(request: Request) -> tuple[Filters, list[str]]:
    """The search asked for, and the names of the fields that could not be read (shown to the
    user, not silently dropped)."""
    q = request.query_params
    invalid: list[str] = []

    def date(name: str) -> dt.date | None:
        value = q.get(name, "").strip()
        try:
            return dt.date.fromisoformat(value) if value else None
        except ValueError:
            invalid.append(name)
            return None

    direction = q.get("direction", "all")
    state = q.get("state", "")
    try:
        page = min(MAX_PAGE, max(1, int(q.get("page", "1"))))
    except ValueError:
        page = 1
    filters = Filters(
        direction=direction if direction in DIRECTIONS else "all",
        document_id=q.get("document_id", "").strip(),
        number=q.get("number", "").strip(),
        subject=q.get("subject", "").strip(),
        counterpart=q.get("counterpart", "").strip(),
        date_from=date("date_from"),
        date_to=date("date_to"),
        state=state if state in STATES else "",
        page=page,
    )
    return filters, invalid


def _today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


async def _documents(request: Request, user: User, session: Session) -> Response:
    console = console_of(request)
    filters, invalid = _filters(request)

    def load() -> tuple[Any, Any]:
        with console.engine.begin() as conn:
            scope = scope_of(conn, user)
            return (
                list_documents(conn, scope, filters),
                per_day(conn, scope, days=CHART_DAYS, today=_today()),
            )

    rows, days = await run_in_threadpool(load)
    t = Translator(language(request))
    chart = bars([(d.strftime("%d/%m"), n) for d, n in days], title=t("per_day"))
    query = {k: v for k, v in request.query_params.items() if k not in ("page", "lang")}
    return render(
        request,
        "documents.html",
        {
            "rows": rows,
            "filters": filters,
            "chart": chart,
            "states": list(STATES),
            "query": query,
            "page_size_reached": len(rows) >= 50,
            "invalid": invalid,
            "notice": None,
        },
        user=user,
        session=session,
    )


def _load(request: Request, user: User, document_id: str) -> DocumentView:
    console = console_of(request)
    t = Translator(language(request))
    with console.engine.begin() as conn:
        scope = scope_of(conn, user)
        return load_document(
            conn,
            scope,
            document_id,
            now=dt.datetime.now(dt.UTC),
            queued_name=t.state(states.QUEUED),
        )


async def _document(request: Request, user: User, session: Session) -> Response:
    document_id = request.path_params["document_id"]
    console = console_of(request)

    def load() -> tuple[DocumentView, str]:
        view = _load(request, user, document_id)
        with console.engine.connect() as conn:
            return view, version(conn, scope_of(conn, user), document_id)

    try:
        view, current_version = await run_in_threadpool(load)
    except NotFound:
        return not_found(request, user, session)
    return render(
        request,
        "document.html",
        {
            "doc": view,
            "version": current_version,
            "notice": notice(request),
        },
        user=user,
        session=session,
    )


async def _live(request: Request, user: User, session: Session) -> Response:
    """204 while nothing changed since ``v``; else the recipients' part of the page."""
    document_id = request.path_params["document_id"]
    console = console_of(request)
    seen = request.query_params.get("v", "")

    def check() -> str | None:
        with console.engine.connect() as conn:
            scope = scope_of(conn, user)
            if not in_view(conn, scope, document_id):
                return None
            return version(conn, scope, document_id)

    now = await run_in_threadpool(check)
    if now is None:
        return Response(status_code=404)
    if now == seen:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    try:
        view = await run_in_threadpool(_load, request, user, document_id)
    except NotFound:
        return Response(status_code=404)
    fragment = console.templates.get_template("_submissions.html").render(
        t=Translator(language(request)),
        doc=view,
        user=user,
        csrf=session.csrf,
        csrf_field="csrf_token",
        path=request.url.path,
    )
    return JSONResponse({"version": now, "html": fragment}, headers={"Cache-Control": "no-store"})


documents_page = signed_in(_documents)
document_page = signed_in(_document)
live_document = signed_in(_live)
