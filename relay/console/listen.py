"""The address the console serves on: ``HOST:PORT``, bound before serving, and a free one for
the demo."""

from __future__ import annotations

import socket

from relay.errors import InvalidInput

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) into its parts, or a clear error."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--listen: {value!r} is not HOST:PORT (for example 127.0.0.1:8080)")
    return host, int(port)


def bind_listen(listen: str) -> socket.socket:
    """A listening socket on ``listen`` (``HOST:PORT``), or an error saying what to change.

    Bound here, before the console says where it serves: uvicorn binding it itself printed
    "lienthong console on …" and then only ``[Errno 98] … address already in use``, exit 3.
    """
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as e:
        raise InvalidInput(
            f"--listen: cannot serve the console on {listen}: {e.strerror or e}; choose another "
            "HOST:PORT (is another console, or another program, using it?)"
        ) from e


def free_listen(preferred: str = DEFAULT_LISTEN) -> str:
    """``preferred`` when nothing listens there yet, else a free port on the same host."""
    host, port = parse_listen(preferred)
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"
