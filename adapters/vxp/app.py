"""The HTTP face of the SDK connector (FastAPI): the axis's paths, its headers, its answers.

Every call is verified first (HMAC of the signed header set with the configured secret, the
configured system id), then handed to :class:`~adapters.vxp.service.SdkService`. Every path
accepts GET and POST (clients of the axis differ), never requires a JSON body, and answers JSON
with ``status``/``ErrorCode``/``ErrorDesc`` (HTTP 200 for a refused call, as the axis does) —
except ``downloadEdoc``, which answers the package's bytes. The OpenAPI description is served at
``<path_prefix>/openapi.json``.

Handlers run on the server's event loop thread, one at a time: the store and the spool are
SQLite connections of that thread, and a DMS calls its adapter at a modest rate, so serialising
the calls keeps every write a plain durable transaction without a connection pool.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from adapters.config import AdapterConfig
from adapters.formats.base import FileFormat
from adapters.spool import Spool, SpoolError
from adapters.vxp.answers import FAIL, BadRequest, TooLarge, Unavailable, VxpError, ok
from adapters.vxp.package import Upload, package_from_text
from adapters.vxp.protocol import SignedCall, verify
from adapters.vxp.service import SdkService
from adapters.vxp.store import SdkStore
from schemas import topology as t

log = structlog.get_logger()

#: The multipart part that carries the package (clients of the axis other than the SDK).
FILE_PART = "file_doc"
#: Bytes read from an uploaded part at a time; bytes base64-encoded at a time into a streamed
#: getEdoc answer (a multiple of 3, so that the pieces join up).
UPLOAD_BLOCK = 1024 * 1024
BASE64_BLOCK = 3 * 1024 * 1024


class Answer(BaseModel):
    """Every JSON answer: ``status`` OK or FAIL, ``ErrorCode`` "0" on success, ``ErrorDesc``."""

    status: str = Field(examples=["OK"])
    ErrorCode: str = Field(examples=["0"])
    ErrorDesc: str = Field(examples=[""])
    DocId: str | None = Field(None, description="sendEdoc: the hub's id of the package")
    data: Any = Field(None, description="lists, or the base64 package for getEdoc")
    count: int | None = Field(None, description="countReceiveEdoc / countReceiveStatus")


_SIGNED_HEADERS: list[dict[str, Any]] = [
    {
        "name": "XroadVnpt-sign-header",
        "in": "header",
        "required": True,
        "description": 'JSON object text {"XroadVnpt-<name>":"<value>",…} of the signed '
        "parameters (systemid, servicetype, messagetype, docId, status, from, to, hash-file, "
        "fromDate, toDate, pageSize, pageIndex…); names are case-insensitive, unknown ones "
        "ignored",
        "schema": {"type": "string"},
    },
    {
        "name": "XroadVnpt-hash-header",
        "in": "header",
        "required": True,
        "description": "lower-case hex HMAC-SHA256 of the exact bytes of XroadVnpt-sign-header, "
        "keyed with the UTF-8 bytes of the shared secret",
        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
    },
    {
        "name": "XroadVnpt-sign-header-key",
        "in": "header",
        "required": False,
        "description": "the signed names joined by ';' (informative)",
        "schema": {"type": "string"},
    },
]

_PACKAGE_BODY: dict[str, Any] = {
    "required": False,
    "description": "the edXML package: raw bytes (what the SDK sends), multipart part "
    "'file_doc', or base64 text of the file",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {FILE_PART: {"type": "string", "format": "binary"}},
            }
        },
        "text/plain": {"schema": {"type": "string", "format": "byte"}},
    },
}

Handler = Callable[[SdkService, SignedCall, Request], Awaitable[dict[str, Any] | Response]]


async def _upload(request: Request, config: AdapterConfig, upload: Upload) -> None:
    """Stream the request's package into ``upload`` (a file on disk, never whole in memory);
    TooLarge beyond ``max_package_bytes``, BadRequest without one."""
    limit = config.max_package_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit * 4 // 3 + 65536:
        raise TooLarge(
            f"the request body is {declared} bytes, over this adapter's limit of {limit} "
            "bytes for a package (max_package_bytes)"
        )
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        # Starlette spools file parts to disk (past 1 MiB); a text field is held in memory,
        # so it keeps the single-message limit.
        try:
            form = await request.form(
                max_files=4, max_fields=64, max_part_size=config.max_file_bytes
            )
        except (HTTPException, MultiPartException) as e:  # Starlette: a body it cannot parse
            detail = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
            raise BadRequest(
                f"the multipart body cannot be read ({detail}); send the edXML file in a "
                f"multipart/form-data part named {FILE_PART!r} with its boundary, or as the "
                "request body (application/octet-stream)"
            ) from e
        part = form.get(FILE_PART)
        if part is None:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            part = files[0] if len(files) == 1 else None
        if part is None:
            raise BadRequest(
                f"the multipart body has no part {FILE_PART!r}; put the edXML file in a part "
                f"named {FILE_PART!r}"
            )
        if isinstance(part, UploadFile):
            while block := await part.read(UPLOAD_BLOCK):
                upload.write(block)
        else:
            upload.write(part.encode("utf-8"))
        return
    async for block in request.stream():
        upload.write(block)


async def _send_edoc(service: SdkService, call: SignedCall, request: Request) -> dict[str, Any]:
    config = service.config
    with Upload(config.blobs_dir, config.max_package_bytes) as upload:
        await _upload(request, config, upload)
        upload.finish()
        if upload.size <= config.chunk_threshold_bytes:  # the single-message path
            return service.send_edoc(call, package_from_text(upload.read()))
        # issue 17: a large package is read from disk and its attachments sent in chunks
        return service.send_edoc_file(call, upload.package(), upload.sha256())


async def _download(service: SdkService, call: SignedCall, _request: Request) -> Response:
    package = service.package_file(call)
    if isinstance(package, bytes):
        return Response(package, media_type="application/xml")
    return FileResponse(
        package, media_type="application/xml", background=BackgroundTask(_unlink, package)
    )


async def _get_edoc(
    service: SdkService, call: SignedCall, _request: Request
) -> dict[str, Any] | Response:
    package = service.package_file(call)
    if isinstance(package, bytes):
        return ok(data=base64.b64encode(package).decode("ascii"))
    # The answer's JSON streamed around the base64 of the package, read from disk.
    head, tail = json.dumps(ok(data=_MARK)).split(json.dumps(_MARK))
    return StreamingResponse(
        _json_around_base64(head, package, tail),
        media_type="application/json",
        background=BackgroundTask(_unlink, package),
    )


_MARK = "lienthong-package"


def _json_around_base64(head: str, path: Path, tail: str) -> Iterator[bytes]:
    yield (head + '"').encode("ascii")
    with open(path, "rb") as f:
        while block := f.read(BASE64_BLOCK):
            yield base64.b64encode(block)
    yield ('"' + tail).encode("ascii")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _sync(method: Callable[[SdkService, SignedCall], dict[str, Any]]) -> Handler:
    async def handler(service: SdkService, call: SignedCall, _request: Request) -> dict[str, Any]:
        return method(service, call)

    return handler


#: path -> (handler, summary); every path takes GET and POST.
ENDPOINTS: dict[str, tuple[Handler, str]] = {
    "/sendEdoc": (_send_edoc, "Send a document or status package (spooled, then relayed)"),
    "/getReceivedEdocList": (
        _sync(lambda s, c: s.received_list(c)),
        "Received documents (messagetype=edoc) or statuses (messagetype=status) not acked done",
    ),
    "/getEdoc": (_get_edoc, "A received package, base64 in data"),
    "/downloadEdoc": (_download, "A received package, as its bytes"),
    "/updateStatus": (
        _sync(lambda s, c: s.update_status(c)),
        "Acknowledge a received item: done (never listed again), fail or processing",
    ),
    "/getSentEdocList": (
        _sync(lambda s, c: s.sent_list(c)),
        "Per recipient: how a sent package was routed and the last status received",
    ),
    "/countReceiveEdoc": (
        _sync(lambda s, _c: s.count(t.TYPE_DOCUMENT)),
        "How many received documents are not acked done",
    ),
    "/countReceiveStatus": (
        _sync(lambda s, _c: s.count(t.TYPE_STATUS)),
        "How many received statuses are not acked done",
    ),
    "/getAgenciesList": (
        _sync(lambda s, _c: s.agencies(qd20=False)),
        "The hub's directory as the relay published it",
    ),
    "/getAgenciesListQD20": (
        _sync(lambda s, _c: s.agencies(qd20=True)),
        "The hub's directory with QĐ 20 codes",
    ),
    "/registerAgency": (
        _sync(lambda s, _c: s.directory_is_kept_by_the_hub("registerAgency")),
        "Not offered: the hub's operators keep the directory",
    ),
    "/deleteAgency": (
        _sync(lambda s, _c: s.directory_is_kept_by_the_hub("deleteAgency")),
        "Not offered: the hub's operators keep the directory",
    ),
}


def create_app(config: AdapterConfig, fmt: FileFormat) -> FastAPI:
    """The SDK API of the adapter configured by ``config`` (its ``[vxp]`` must be set)."""
    vxp = config.vxp
    assert vxp is not None and vxp.secret is not None
    secret = vxp.secret.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        spool = Spool(config.spool_path)
        try:
            app.state.service = SdkService(config, spool, SdkStore(spool), fmt)
            yield
        finally:
            spool.close()

    app = FastAPI(
        title="lienthong adapter — national SDK (VXP) API",
        version="1",
        description="The national axis's DMS API as the SDK (SDKVXP 2.0.x) calls it, served by "
        f"the adapter of {config.agency}. See the README's section for DMS vendors.",
        lifespan=lifespan,
        openapi_url=f"{vxp.path_prefix}/openapi.json",
        docs_url=f"{vxp.path_prefix}/docs",
        redoc_url=None,
    )
    router = APIRouter(prefix=vxp.path_prefix)

    def route(path: str, handler: Handler, summary: str) -> None:
        name = path.strip("/")

        async def endpoint(request: Request) -> Response:
            service: SdkService = request.app.state.service
            bound = log.bind(agency=config.agency, call=name)
            try:
                call = verify(request.headers.raw, secret=secret, systemid=vxp.systemid)
                result = await handler(service, call, request)
            except VxpError as e:
                bound.warning("sdk.refused", error_code=e.code, reason=str(e))
                return JSONResponse(e.answer())
            except SpoolError as e:
                bound.error("sdk.store_failed", reason=str(e))
                refused = Unavailable(
                    "the adapter cannot write its local store now; nothing was taken, try again"
                )
                return JSONResponse(refused.answer(), status_code=503)
            except Exception:  # edge of the HTTP connector: logged, answered in the SDK's form
                bound.exception("sdk.failed")
                failed = {
                    "status": FAIL,
                    "ErrorCode": "500",
                    "ErrorDesc": "the adapter failed on this call (its log says why: event "
                    "sdk.failed); try again (a repeated sendEdoc is never sent twice)",
                }
                return JSONResponse(failed, status_code=500)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        extra: dict[str, Any] = {"parameters": _SIGNED_HEADERS}
        if path == "/sendEdoc":
            extra["requestBody"] = _PACKAGE_BODY
        for method in ("POST", "GET"):
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                name=name,
                operation_id=name if method == "POST" else f"{name}_get",
                summary=summary,
                response_model=Answer if path != "/downloadEdoc" else None,
                response_model_exclude_none=True,
                openapi_extra=extra,
            )

    for path, (handler, summary) in ENDPOINTS.items():
        route(path, handler, summary)
    app.include_router(router)
    return app
