"""A small client for the RabbitMQ management HTTP API (users, permissions, vhosts, policies).

Errors become the project's own: ServiceUnavailable when the API cannot be reached,
PermanentError when it refuses.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from relay.errors import PermanentError, ServiceUnavailable


def _q(name: str) -> str:
    return quote(name, safe="")


def user_tags(user: dict[str, Any]) -> list[str]:
    """A user's tags: a list since RabbitMQ 3.9, a comma-separated string before."""
    tags = user.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [str(x).strip() for x in tags if str(x).strip()]


class ManagementClient:
    """Thin wrapper over ``/api``; every method is idempotent where the API allows it."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        # Creating or deleting a vhost with quorum queues takes RabbitMQ seconds, and tens of
        # seconds on a loaded machine; a short timeout turns a slow broker into a false failure.
        parts = urlsplit(url)
        user = parts.username or "guest"
        password = parts.password or "guest"
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urlunsplit((parts.scheme or "http", netloc, parts.path.rstrip("/"), "", ""))
        self._http = httpx.Client(base_url=self.base, auth=(user, password), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = self._http.request(
                method,
                "/api" + path,
                content=None if body is None else json.dumps(body),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as e:
            raise ServiceUnavailable(
                f"RabbitMQ management API at {self.base} is unreachable ({e}); is the "
                "rabbitmq_management plugin enabled? (rabbitmq-plugins enable rabbitmq_management)"
            ) from e
        if resp.status_code == 404 and method == "GET":
            return None
        if resp.status_code >= 400:
            raise PermanentError(
                f"RabbitMQ management API refused {method} {path}: "
                f"{resp.status_code} {resp.text.strip()[:300]}"
            )
        if resp.content and resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return None

    # vhosts
    def ensure_vhost(self, vhost: str) -> None:
        self._request("PUT", f"/vhosts/{_q(vhost)}", {})

    def delete_vhost(self, vhost: str) -> None:
        try:
            self._request("DELETE", f"/vhosts/{_q(vhost)}")
        except PermanentError as e:
            if " 404 " not in str(e):
                raise

    def vhost_exists(self, vhost: str) -> bool:
        return self._request("GET", f"/vhosts/{_q(vhost)}") is not None

    # users and permissions
    def put_user(self, name: str, password: str, tags: str = "") -> None:
        self._request("PUT", f"/users/{_q(name)}", {"password": password, "tags": tags})

    def add_user_tag(self, name: str, tag: str) -> None:
        """Add ``tag`` to an existing user, keeping its password (hash) and other tags."""
        user = self.get_user(name)
        if user is None:
            raise PermanentError(f"RabbitMQ user {name!r} does not exist")
        tags = user_tags(user)
        if tag in tags:
            return
        self._request(
            "PUT",
            f"/users/{_q(name)}",
            {
                "password_hash": user.get("password_hash", ""),
                "hashing_algorithm": user.get("hashing_algorithm", ""),
                "tags": ",".join([*tags, tag]),
            },
        )

    def get_user(self, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._request("GET", f"/users/{_q(name)}")
        return result

    def list_user_names(self) -> set[str]:
        users: list[dict[str, Any]] = self._request("GET", "/users?columns=name") or []
        return {u["name"] for u in users}

    def delete_user(self, name: str) -> None:
        try:
            self._request("DELETE", f"/users/{_q(name)}")
        except PermanentError as e:
            if " 404 " not in str(e):
                raise

    def set_permissions(
        self, vhost: str, user: str, *, configure: str, write: str, read: str
    ) -> None:
        self._request(
            "PUT",
            f"/permissions/{_q(vhost)}/{_q(user)}",
            {"configure": configure, "write": write, "read": read},
        )

    def set_topic_permissions(
        self, vhost: str, user: str, *, exchange: str, write: str, read: str
    ) -> None:
        self._request(
            "PUT",
            f"/topic-permissions/{_q(vhost)}/{_q(user)}",
            {"exchange": exchange, "write": write, "read": read},
        )

    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        self._delete_quietly(f"/topic-permissions/{_q(vhost)}/{_q(user)}")

    def user_permissions(self, user: str) -> list[dict[str, Any]]:
        """The user's permissions, one entry per vhost."""
        result: list[dict[str, Any]] = self._request("GET", f"/users/{_q(user)}/permissions") or []
        return result

    def vhost_permissions(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Every user's permissions on ``vhost``, by user."""
        found: list[dict[str, Any]] = self._request("GET", f"/vhosts/{_q(vhost)}/permissions") or []
        return {p["user"]: p for p in found}

    def vhost_topic_permissions(self, vhost: str) -> set[str]:
        """The users that have topic permissions on ``vhost``."""
        path = f"/vhosts/{_q(vhost)}/topic-permissions"
        found: list[dict[str, Any]] = self._request("GET", path) or []
        return {p["user"] for p in found}

    def all_user_limits(self) -> dict[str, dict[str, int]]:
        """The limits of every user that has some, by user."""
        found: list[dict[str, Any]] = self._request("GET", "/user-limits") or []
        return {x["user"]: dict(x["value"]) for x in found}

    def list_users(self) -> list[dict[str, Any]]:
        """Every user with its tags (a list of strings)."""
        result: list[dict[str, Any]] = self._request("GET", "/users?columns=name,tags") or []
        return result

    def set_user_limit(self, user: str, name: str, value: int) -> None:
        """``max-connections`` / ``max-channels`` of one user (broker-wide)."""
        self._request("PUT", f"/user-limits/{_q(user)}/{_q(name)}", {"value": value})

    def user_limits(self, user: str) -> dict[str, int]:
        found: list[dict[str, Any]] = self._request("GET", f"/user-limits/{_q(user)}") or []
        return dict(found[0]["value"]) if found else {}

    def close_user_connections(self, user: str, reason: str) -> None:
        """Close every connection the user has open (on any vhost of the broker)."""
        self._http.headers["X-Reason"] = reason
        try:
            self._delete_quietly(f"/connections/username/{_q(user)}")
        finally:
            del self._http.headers["X-Reason"]

    def list_connections(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            self._request("GET", "/connections?columns=name,user,vhost") or []
        )
        return result

    def _delete_quietly(self, path: str) -> None:
        """DELETE ``path``; one that is already gone (404) is fine."""
        try:
            self._request("DELETE", path)
        except PermanentError as e:
            if " 404 " not in str(e):
                raise

    def clear_permissions(self, vhost: str, user: str) -> None:
        for path in (
            f"/permissions/{_q(vhost)}/{_q(user)}",
            f"/topic-permissions/{_q(vhost)}/{_q(user)}",
        ):
            try:
                self._request("DELETE", path)
            except PermanentError as e:
                if " 404 " not in str(e):
                    raise

    # policies
    def put_policy(
        self,
        vhost: str,
        name: str,
        *,
        pattern: str,
        definition: dict[str, Any],
        apply_to: str = "queues",
        priority: int = 0,
    ) -> None:
        self._request(
            "PUT",
            f"/policies/{_q(vhost)}/{_q(name)}",
            {
                "pattern": pattern,
                "definition": definition,
                "apply-to": apply_to,
                "priority": priority,
            },
        )

    # queues (read side, for operators and tests)
    def get_queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._request("GET", f"/queues/{_q(vhost)}/{_q(name)}")
        return result

    def list_queues(self, vhost: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/queues/{_q(vhost)}") or []
        return result

    # exchanges, queues, bindings (declared through the API so setup needs no AMQP session)
    def put_exchange(self, vhost: str, name: str, kind: str) -> None:
        self._request("PUT", f"/exchanges/{_q(vhost)}/{_q(name)}", {"type": kind, "durable": True})

    def put_queue(self, vhost: str, name: str, arguments: dict[str, Any] | None = None) -> None:
        self._request(
            "PUT",
            f"/queues/{_q(vhost)}/{_q(name)}",
            {"durable": True, "auto_delete": False, "arguments": arguments or {}},
        )

    def get_exchange(self, vhost: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._request("GET", f"/exchanges/{_q(vhost)}/{_q(name)}")
        return result

    def exchange_bindings(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """The bindings whose source is exchange ``name``."""
        path = f"/exchanges/{_q(vhost)}/{_q(name)}/bindings/source"
        result: list[dict[str, Any]] = self._request("GET", path) or []
        return result

    def delete_queue(self, vhost: str, name: str) -> None:
        try:
            self._request("DELETE", f"/queues/{_q(vhost)}/{_q(name)}")
        except PermanentError as e:
            if " 404 " not in str(e):
                raise

    def bind_queue(self, vhost: str, exchange: str, queue: str, routing_key: str) -> None:
        # Binding the same (exchange, queue, key) twice is a no-op in RabbitMQ.
        self._request(
            "POST",
            f"/bindings/{_q(vhost)}/e/{_q(exchange)}/q/{_q(queue)}",
            {"routing_key": routing_key, "arguments": {}},
        )
