"""What every page shares: the console's state, who is asking, in which language, rendering."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from relay.config import Settings
from relay.console import users
from relay.console.documents import VIETNAM
from relay.console.i18n import EN, LANGUAGES, VI, Translator
from relay.console.ratelimit import LoginLimiter
from relay.console.roles import User
from relay.console.sessions import COOKIE, CSRF_FIELD, LANG_COOKIE, Session, SessionSigner

log = structlog.get_logger()

Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, User, Session], Awaitable[Response]]


@dataclass
class Console:
    """Everything the pages need, built once by :func:`relay.console.app.create_app`."""

    settings: Settings
    engine: Engine
    signer: SessionSigner
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(env=template_environment())


def template_environment() -> jinja2.Environment:
    """The pages' templates; a name a template uses but is not given is an error, not blank."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("relay.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = when
    env.filters["url_id"] = lambda value: quote(str(value), safe="")
    return env


def make_signer(settings: Settings) -> SessionSigner:
    secret = settings.console_secret
    if not secret:
        secret = secrets.token_urlsafe(48)
        log.warning(
            "console.random_secret",
            hint="set LIENTHONG_CONSOLE_SECRET so that logins survive a restart",
        )
    return SessionSigner(secret, int(settings.console_session_hours * 3600))


def when(value: dt.datetime | dt.date | None) -> str:
    """A time as read in Vietnam (dd/mm/yyyy HH:MM:SS), or a date; '—' for none."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S")
    return value.strftime("%d/%m/%Y")


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    return cookie if cookie in LANGUAGES else VI


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    user: User | None = None,
    session: Session | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    lang = language(request)
    other = EN if lang == VI else VI
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    query["lang"] = other
    response = console_of(request).templates.TemplateResponse(
        request,
        name,
        {
            "t": Translator(lang),
            "lang": lang,
            # The path is decoded by now; a DocumentId may hold '?', '#' or '%'.
            "switch_language": f"{quote(request.scope['path'])}?{urlencode(query)}",
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf": session.csrf if session else "",
            "path": request.url.path,
            **context,
        },
        status_code=status,
        headers=headers,
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    return response


async def current(request: Request) -> tuple[User, Session] | None:
    """The signed-in, active user and their session, or None."""
    console = console_of(request)
    session = console.signer.read(request.cookies.get(COOKIE))
    if session is None:
        return None

    def load() -> User | None:
        with console.engine.connect() as conn:
            return users.get_user(conn, session.username)

    user = await run_in_threadpool(load)
    if user is None or user.disabled:
        return None
    return user, session


def safe_next(value: object) -> str:
    """A local path to go back to after a login or an action, never another site.

    ``//host`` and ``/\\host`` are other sites to a browser (it reads a backslash as a slash).
    """
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and "\\" not in value
        and value.isprintable()
        and " " not in value
    ):
        return value
    return "/documents"


def signed_in(handler: UserHandler) -> Handler:
    """Run ``handler`` for a signed-in user; an anonymous visitor is sent to ``/login``."""

    async def wrapper(request: Request) -> Response:
        found = await current(request)
        if found is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        return await handler(request, *found)

    return wrapper


def not_found(request: Request, user: User | None, session: Session | None) -> Response:
    return render(
        request,
        "error.html",
        {"title": "not_found", "text": "not_found_text"},
        status=404,
        user=user,
        session=session,
    )


def forbidden(
    request: Request, user: User, session: Session, text: str = "forbidden_text"
) -> Response:
    return render(
        request,
        "error.html",
        {"title": "forbidden", "text": text},
        status=403,
        user=user,
        session=session,
    )


def notice(request: Request) -> tuple[str, dict[str, str]] | None:
    """The outcome of the action that redirected here (an allowed message key only)."""
    key = request.query_params.get("notice")
    allowed = {"resent_n", "resent_none", "action_failed", "suspended_ok", "resumed_ok"}
    if key not in allowed:
        return None
    values = {k: request.query_params.get(k, "") for k in ("n", "code", "error")}
    return key, values
