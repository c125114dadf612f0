"""What the demo prepares by itself on a fresh machine: RabbitMQ's management plugin.

A fresh Debian install of ``rabbitmq-server`` runs the broker without its management plugin,
which the hub needs (topology, agency provisioning). When the broker is on this machine and
answers AMQP but not the management API, the demo runs ``rabbitmq-plugins enable
rabbitmq_management`` (as ``deploy/local-services.sh`` does for CI) and waits for the API. What
it cannot do (a remote broker, no ``rabbitmq-plugins``, not allowed to talk to the node) is
said precisely, with the command a person runs instead.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lienthong.demo.preflight import Endpoint, Unreachable

#: Where Debian's package puts the tool when ``/usr/sbin`` is not on PATH (a non-root user).
PLUGINS_FALLBACKS = (
    Path("/usr/sbin/rabbitmq-plugins"),
    Path("/usr/lib/rabbitmq/bin/rabbitmq-plugins"),
)
#: The plugin starts its listener within seconds; a loaded machine may take longer.
MANAGEMENT_START_SECONDS = 90.0


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plugins_command() -> str | None:
    found = shutil.which("rabbitmq-plugins")
    if found:
        return found
    for path in PLUGINS_FALLBACKS:
        if path.exists():
            return str(path)
    return None


def _api_answers(url: str, timeout: float = 5.0) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/api/overview", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def enable_management(
    endpoint: Endpoint, management_url: str, say: Callable[[str], None]
) -> Unreachable | None:
    """Enable the management plugin of the local broker; None when its API then answers."""
    how = "sudo rabbitmq-plugins enable rabbitmq_management"
    if not is_local(endpoint.host):
        return Unreachable(
            endpoint,
            f"the broker is on another machine ({endpoint.host}), where the demo does not "
            f"change anything; enable the plugin there (`{how}`)",
        )
    command = plugins_command()
    if command is None:
        return Unreachable(
            endpoint,
            "RabbitMQ answers but its management plugin is not enabled, and `rabbitmq-plugins` "
            f"is not installed here to enable it; run `{how}` where RabbitMQ is installed",
        )
    say(f"     the management plugin is off: running `{command} enable rabbitmq_management`…")
    try:
        done = subprocess.run(
            [command, "enable", "rabbitmq_management"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return Unreachable(endpoint, f"`{command} enable rabbitmq_management` failed: {e}")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        why = said[-1] if said else f"exit status {done.returncode}"
        return Unreachable(
            endpoint,
            f"the management plugin is not enabled and `{command} enable rabbitmq_management` "
            f"failed ({why}); run `{how}` (it needs the rights of the RabbitMQ node: root or "
            "the rabbitmq user)",
        )
    if "offline change" in done.stdout.lower():
        return Unreachable(
            endpoint,
            f"`{command} enable rabbitmq_management` could not reach the running RabbitMQ node "
            "(another node name, or no right to read its Erlang cookie), so it only changed the "
            "enabled_plugins file, which takes effect when RabbitMQ restarts; restart RabbitMQ, "
            f"or run `{how}`",
        )
    deadline = time.monotonic() + MANAGEMENT_START_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((endpoint.host, endpoint.port), timeout=2.0):
                if _api_answers(management_url):
                    say(f"     management API answers at {endpoint.url}")
                    return None
        except OSError:
            pass
        time.sleep(1.0)
    return Unreachable(
        endpoint,
        f"the plugin was enabled but nothing answers on port {endpoint.port} after "
        f"{MANAGEMENT_START_SECONDS:.0f}s; is the node's management listener on another port "
        "(management.tcp.port in rabbitmq.conf)? Set LIENTHONG_MANAGEMENT_URL to it",
    )
