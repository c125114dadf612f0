"""``/login`` and ``/logout``."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from relay.console import users
from relay.console.roles import User
from relay.console.sessions import COOKIE, CSRF_FIELD, Session, csrf_ok
from relay.console.web import (
    client_address,
    console_of,
    current,
    forbidden,
    render,
    safe_next,
    signed_in,
)

log = structlog.get_logger()


def _cross_site(request: Request) -> bool:
    """A login POST sent by another site's page (login CSRF); browsers send ``Origin``."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host", "")


async def login_page(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(
        request,
        "login.html",
        {"error": None, "next": request.query_params.get("next", ""), "username": ""},
    )


async def login(request: Request) -> Response:
    console = console_of(request)
    form = await request.form()
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(form.get("next"))
    client = client_address(request)
    context = {"next": next_path, "username": name}
    if _cross_site(request):
        log.warning("console.login_cross_site", client=client, origin=request.headers.get("origin"))
        return render(request, "login.html", {**context, "error": ("csrf_text", {})}, status=403)
    wait = console.limiter.retry_after(name, client)
    if wait > 0:
        seconds = math.ceil(wait)
        log.warning("console.login_limited", user=name, client=client)
        return render(
            request,
            "login.html",
            {**context, "error": ("login_limited", {"seconds": seconds})},
            status=429,
            headers={"Retry-After": str(seconds)},
        )

    def check() -> User | None:
        with console.engine.begin() as conn:
            return users.authenticate(conn, name, password)

    user = await run_in_threadpool(check)
    if user is None:
        console.limiter.failed(name, client)
        log.info("console.login_failed", user=name, client=client)
        return render(request, "login.html", {**context, "error": ("login_failed", {})}, status=401)
    console.limiter.succeeded(name)
    _, value = console.signer.new(user.name)
    log.info("console.login", user=user.name, role=user.role, client=client)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=console.signer.max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def _logout(request: Request, user: User, session: Session) -> Response:
    form = await request.form()
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return forbidden(request, user, session, "csrf_text")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


logout = signed_in(_logout)
