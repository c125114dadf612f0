"""The monitoring endpoint of the relay and the adapter: ``/metrics``, ``/healthz``, ``/readyz``.

A small WSGI app on a threaded server (the standard library's, as prometheus-client's own
``start_http_server`` uses) in a daemon thread. ``/metrics`` is prometheus-client's exposition
of the given registry; ``/healthz`` answers 200 ``ok`` when every health check passes and 503
with one line per problem otherwise; ``/readyz`` adds the readiness checks. A check returns a
problem a person can act on, or None; a check that raises is a problem too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from schemas.errors import InvalidInput

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: One check: None when fine, else what is wrong.
Check = Callable[[], str | None]


class AddressError(InvalidInput, ValueError):
    """A monitoring address that cannot be used."""


def parse_addr(addr: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:9464`` for IPv6) → (host, port); empty → None (disabled)."""
    addr = addr.strip()
    if not addr:
        return None
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(f"{addr!r} is not host:port (e.g. 127.0.0.1:9464; empty to disable)")
    return host.strip("[]") or "0.0.0.0", int(port)


def problems(checks: Iterable[Check]) -> list[str]:
    found = []
    for check in checks:
        try:
            problem = check()
        except Exception as e:  # a broken check is reported, not raised into the server
            name = getattr(check, "__name__", type(check).__name__)  # a function, or an object
            problem = f"{name} failed: {type(e).__name__}: {e}"
        if problem:
            found.append(problem)
    return found


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow health check does not hold up a scrape."""

    daemon_threads = True


class MonitoringServer:
    """Serves the three paths on ``addr`` from :meth:`start` to :meth:`stop`."""

    def __init__(
        self,
        addr: tuple[str, int],
        registry: CollectorRegistry,
        *,
        health: Sequence[Check] = (),
        ready: Sequence[Check] = (),
    ) -> None:
        from prometheus_client import make_wsgi_app

        self.addr = addr
        self.health = list(health)
        self.ready = list(ready)
        self._metrics = make_wsgi_app(registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics(environ, start_response)
            return result
        if path in ("/healthz", "/readyz"):
            checks = self.health + (self.ready if path == "/readyz" else [])
            found = problems(checks)
            status = "503 Service Unavailable" if found else "200 OK"
            body = ("\n".join(found) if found else "ok") + "\n"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [body.encode("utf-8")]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    def start(self) -> MonitoringServer:
        host, port = self.addr
        try:
            self._server = make_server(
                host, port, self.app, server_class=_ThreadingServer, handler_class=_QuietHandler
            )
        except OSError as e:
            raise AddressError(
                f"cannot serve /metrics on {host}:{port}: {e.strerror or e}; choose another "
                "address, or an empty one to turn the endpoint off"
            ) from e
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lienthong-monitoring", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
