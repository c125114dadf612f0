"""A client that behaves like the national SDK (SDKVXP 2.0.x) as ``../shared/VXP.md`` describes it.

- every parameter is an ``XroadVnpt-<name>`` header and part of the signed JSON header set
  (``XroadVnpt-sign-header``, compact JSON, UTF-8), whose HMAC-SHA256 keyed with the secret's
  UTF-8 bytes is ``XroadVnpt-hash-header`` (lower-case hex);
- the parameter map is never cleared: keys of earlier calls are sent again on later ones;
- the timestamp is fixed when the client is created;
- POSTs without a file have an empty body while declaring ``Content-Type: application/json``;
- ``sendEdoc`` posts the file's bytes as the raw body (or multipart ``file_doc``, or base64
  text, as other clients of the axis do), with ``hash-file`` in the SDK's unpadded hex.

Every exchange is recorded in :attr:`SdkClient.exchanges` (request headers and body summary,
HTTP status, answer) so a test can print what went over the wire.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import httpx


def sdk_hex(data: bytes) -> str:
    """SHA-256 the way the SDK renders it: each byte without its leading zero."""
    return "".join(f"{b:x}" for b in hashlib.sha256(data).digest())


@dataclass
class Exchange:
    method: str
    path: str
    signed: str
    body: str
    http_status: int
    answer: Any


@dataclass
class SdkClient:
    base_url: str
    systemid: str
    secret: str
    #: Header names as the caller writes them (``docId`` or ``docid``: clients differ).
    doc_id_name: str = "docId"
    params: dict[str, str] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=7)))
        # ddMMyyyy'T'HHmmss+SSSS, the last part being milliseconds; fixed for the lifetime.
        self.timestamp = now.strftime("%d%m%YT%H%M%S") + f"+{now.microsecond // 1000:04d}"
        self.http = httpx.Client(base_url=self.base_url, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    # -- signing -------------------------------------------------------------------------
    def signed_headers(
        self, content_type: str, *, secret: str | None = None
    ) -> tuple[list[tuple[str, bytes]], str]:
        """The headers of a call with the current parameter map; (headers, signed JSON text)."""
        signed: dict[str, str] = {"XroadVnpt-systemid": self.systemid}
        signed.update({f"XroadVnpt-{k}": v for k, v in self.params.items()})
        signed["XroadVnpt-timestamp"] = self.timestamp
        signed["XroadVnpt-Content-Type"] = content_type
        text = json.dumps(signed, ensure_ascii=False, separators=(",", ":"))
        key = (secret if secret is not None else self.secret).encode("utf-8")
        mac = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
        headers = [(name, value.encode("utf-8")) for name, value in signed.items()]
        headers += [
            ("XroadVnpt-sign-header-key", ";".join(signed).encode("utf-8")),
            ("XroadVnpt-sign-header", text.encode("utf-8")),
            ("XroadVnpt-hash-header", mac.encode("ascii")),
            ("XroadVnpt-version", b"2.0.1"),
            ("User-Agent", b"JAVASDKAgent/1.0.0 XRoad/VPCP"),
            ("Content-Type", content_type.encode("ascii")),
        ]
        return headers, text

    def call(
        self,
        path: str,
        *,
        method: str = "POST",
        body: bytes | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        content_type: str = "application/json",
        secret: str | None = None,
        expect_json: bool = True,
        **params: str,
    ) -> Any:
        """One call; ``params`` join the never-cleared parameter map."""
        self.params.update(params)
        headers, signed = self.signed_headers(content_type, secret=secret)
        if files is not None:
            headers = [h for h in headers if h[0] != "Content-Type"]  # httpx sets the boundary
            response = self.http.request(method, path, headers=headers, files=files)
            parts = ", ".join(f"{k}={v[0]} ({len(v[1])} bytes)" for k, v in files.items())
            shown = f"multipart: {parts}"
        else:
            response = self.http.request(method, path, headers=headers, content=body or b"")
            shown = f"{len(body or b'')} bytes ({content_type})"
        answer: Any
        if expect_json or response.headers.get("content-type", "").startswith("application/json"):
            answer = response.json()
        else:
            answer = response.content
        self.exchanges.append(Exchange(method, path, signed, shown, response.status_code, answer))
        return answer

    # -- the SDK's calls -----------------------------------------------------------------
    def send_edoc(
        self,
        package: bytes,
        *,
        messagetype: str = "edoc",
        form: str = "raw",
        sender: str | None = None,
        to: list[str] | None = None,
        hash_file: str | None = None,
        secret: str | None = None,
    ) -> Any:
        params = {
            "servicetype": "eDoc",
            "messagetype": messagetype,
            "hash-file": hash_file or sdk_hex(package),
        }
        if sender is not None:
            params["from"] = sender
        if to is not None:
            params["to"] = json.dumps(to)
        if form == "multipart":
            return self.call(
                "/sendEdoc",
                files={"file_doc": ("package.edxml", package, "application/octet-stream")},
                content_type="multipart/form-data",
                secret=secret,
                **params,
            )
        if form == "base64":
            return self.call(
                "/sendEdoc",
                body=base64.b64encode(package),
                content_type="text/plain",
                secret=secret,
                **params,
            )
        return self.call(
            "/sendEdoc",
            body=package,
            content_type="application/octet-stream",
            secret=secret,
            **params,
        )

    def received(self, messagetype: str = "edoc", **params: str) -> Any:
        return self.call(
            "/getReceivedEdocList", servicetype="eDoc", messagetype=messagetype, **params
        )

    def get_edoc(self, doc_id: str) -> Any:
        return self.call("/getEdoc", **{self.doc_id_name: doc_id})

    def download(self, doc_id: str) -> bytes:
        data = self.call(
            "/downloadEdoc", method="GET", expect_json=False, **{self.doc_id_name: doc_id}
        )
        assert isinstance(data, bytes), data
        return data

    def download_answer(self, doc_id: str) -> Any:
        """``downloadEdoc`` expecting a JSON answer (a refusal)."""
        return self.call("/downloadEdoc", method="GET", **{self.doc_id_name: doc_id})

    def update_status(self, doc_id: str, status: str) -> Any:
        return self.call("/updateStatus", status=status, **{self.doc_id_name: doc_id})

    def sent_list(self, doc_id: str) -> Any:
        return self.call("/getSentEdocList", **{self.doc_id_name: doc_id})

    def count(self, what: str = "Edoc") -> Any:
        return self.call(f"/countReceive{what}", method="GET")

    def transcript(self, *, limit: int = 400) -> str:
        """What went over the wire, one block per exchange (long data cut to ``limit``)."""
        lines = []
        for n, x in enumerate(self.exchanges, 1):
            answer = (
                json.dumps(x.answer, ensure_ascii=False)
                if not isinstance(x.answer, bytes)
                else f"<{len(x.answer)} bytes>"
            )
            if len(answer) > limit:
                answer = answer[:limit] + f"… ({len(answer)} chars)"
            lines.append(
                f"[{self.systemid} #{n}] {x.method} {x.path}  body: {x.body}\n"
                f"  XroadVnpt-sign-header: {x.signed}\n"
                f"  -> HTTP {x.http_status} {answer}"
            )
        return "\n".join(lines)
