"""A RabbitMQ definitions file of the hub's topology, for boot-time import (DESIGN §3).

``python -m relay.broker.definitions deploy/rabbitmq/definitions.json`` writes the vhost, the
exchanges, the hub's own queues (``lienthong.returned``, ``lienthong.failed-submissions``,
``lienthong.parked``) and their bindings, and the policies, from the same
names (:mod:`schemas.topology`) and policy bodies (:func:`relay.broker.topology.policies`) that
``lienthong relay setup`` declares. The committed file uses the built-in default settings, not
the environment, so it is reproducible; ``tests/unit/test_broker_definitions.py`` checks it.

Agencies' users, queues and submit exchanges are not in it: they are provisioned by
``lienthong agency add`` / ``import``. A node that imports definitions at boot does not create
the default ``guest`` user; ``--admin-user NAME --admin-password-file FILE`` adds an
administrator (password stored as a salted SHA-256 hash) to a deployment's own copy of the file.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from relay.broker.topology import CORE_QUEUES, policies
from relay.config import Settings
from schemas import topology as t

DEFAULT_OUTPUT = Path("deploy/rabbitmq/definitions.json")


def default_settings() -> Settings:
    """The built-in defaults, ignoring ``LIENTHONG_*`` variables (the file must be reproducible)."""
    return Settings.model_construct()


def _exchange(vhost: str, name: str, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def definitions(settings: Settings, vhost: str | None = None) -> dict[str, Any]:
    """The definitions document (the format of ``GET /api/definitions``)."""
    vhost = vhost or settings.vhost
    return {
        "vhosts": [{"name": vhost}],
        "users": [],
        "permissions": [],
        "exchanges": [
            _exchange(vhost, t.SUBMIT_EXCHANGE, "topic"),
            _exchange(vhost, t.DELIVER_EXCHANGE, "direct"),
            *(_exchange(vhost, name, "fanout") for name in CORE_QUEUES),
        ],
        "queues": [
            {
                "name": name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(arguments),
            }
            for name, arguments in CORE_QUEUES.items()
        ],
        "bindings": [
            {
                "source": name,
                "vhost": vhost,
                "destination": name,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
            for name in CORE_QUEUES
        ],
        "policies": [
            {"vhost": vhost, "name": name, **body}
            for name, body in sorted(policies(settings).items())
        ],
    }


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def add_admin(document: dict[str, Any], user: str, password: str) -> None:
    """An administrator with full rights on the document's vhosts."""
    document["users"].append(
        {
            "name": user,
            "password_hash": password_hash(password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "administrator",
        }
    )
    for vhost in document["vhosts"]:
        document["permissions"].append(
            {"user": user, "vhost": vhost["name"], "configure": ".*", "write": ".*", "read": ".*"}
        )


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relay.broker.definitions",
        description="Write the RabbitMQ definitions file of the hub's topology.",
    )
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"file to write ('-' for stdout; default {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--vhost", help="vhost name (default: the one in the default AMQP URL)")
    parser.add_argument(
        "--from-env",
        action="store_true",
        help="use LIENTHONG_* settings (policy limits, vhost) instead of the built-in defaults",
    )
    parser.add_argument("--admin-user", help="add an administrator user to the file")
    parser.add_argument("--admin-password-file", type=Path, help="its password (first line)")
    args = parser.parse_args(argv)

    settings = Settings() if args.from_env else default_settings()
    document = definitions(settings, args.vhost)
    if args.admin_user:
        if args.admin_password_file is None:
            parser.error("--admin-user needs --admin-password-file")
        lines = args.admin_password_file.read_text(encoding="utf-8").strip().splitlines()
        if not lines or not lines[0].strip():
            parser.error(f"--admin-password-file: {str(args.admin_password_file)!r} is empty")
        add_admin(document, args.admin_user, lines[0].strip())
    text = render(document)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
