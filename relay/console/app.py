"""The console's ASGI application: routes, security headers, static files."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.config import Settings
from relay.console import auth_pages, document_pages, headers, hub_pages
from relay.console.ratelimit import LoginLimiter
from relay.console.web import Console, current, make_signer, not_found, render
from relay.errors import ServiceUnavailable

log = structlog.get_logger()

#: Pages only load what the console serves: no inline script, no framing by another site.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def home(request: Request) -> Response:
    return RedirectResponse("/documents", status_code=303)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def missing(request: Request, exc: Exception) -> Response:
    found = await current(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    return not_found(request, *found)


async def unavailable(request: Request, exc: Exception) -> Response:
    """PostgreSQL down: a page that says so (503), not a bare 500."""
    log.warning("console.database_unavailable", error=str(exc).splitlines()[0][:300])
    return render(
        request,
        "error.html",
        {"title": "unavailable", "text": "unavailable_text"},
        status=503,
        headers={"Retry-After": "30"},
    )


def create_app(
    settings: Settings, engine: Engine, *, limiter: LoginLimiter | None = None
) -> Starlette:
    """The console for ``settings``, reading through ``engine`` (the caller disposes of it)."""
    console = Console(
        settings=settings,
        engine=engine,
        signer=make_signer(settings),
        **({"limiter": limiter} if limiter is not None else {}),
    )
    routes = [
        Route("/", home),
        Route("/healthz", health),
        Route("/login", auth_pages.login_page, methods=["GET"]),
        Route("/login", auth_pages.login, methods=["POST"]),
        Route("/logout", auth_pages.logout, methods=["POST"]),
        Route("/documents", document_pages.documents_page),
        Route("/documents/{document_id:path}", document_pages.document_page),
        Route("/live/documents/{document_id:path}", document_pages.live_document),
        Route("/failures", hub_pages.failures_page),
        Route("/resend", hub_pages.resend_action, methods=["POST"]),
        Route("/agencies", hub_pages.agencies_page),
        Route("/agencies/suspend", hub_pages.suspend_action, methods=["POST"]),
        Route("/agencies/resume", hub_pages.resume_action, methods=["POST"]),
        Route("/audit", hub_pages.audit_page),
        Mount("/static", StaticFiles(packages=[("relay.console", "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        reader = threading.Thread(
            target=headers.keep_up, args=(engine, stop), name="console-headers", daemon=True
        )
        reader.start()
        try:
            yield
        finally:
            stop.set()
            reader.join(10)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            404: missing,
            OperationalError: unavailable,
            ServiceUnavailable: unavailable,
        },
    )
    app.state.console = console
    return app
