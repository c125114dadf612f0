"""The SDK connector's HTTP server: uvicorn in a thread of the adapter daemon."""

from __future__ import annotations

import threading
import time

import structlog
import uvicorn

from adapters.config import AdapterConfig
from adapters.formats.base import FileFormat
from adapters.vxp.app import create_app
from schemas.errors import LienthongError

log = structlog.get_logger()


class SdkServerFailed(LienthongError, RuntimeError):
    """The HTTP server could not start (address in use…) or stopped on its own."""


class SdkServer:
    """Serves the SDK API on ``[vxp].listen`` until :meth:`stop`."""

    START_TIMEOUT_SECONDS = 30.0

    def __init__(self, config: AdapterConfig, fmt: FileFormat) -> None:
        assert config.vxp is not None
        self.config = config
        self.vxp = config.vxp
        uv_config = uvicorn.Config(
            create_app(config, fmt),
            host=self.vxp.host,
            port=self.vxp.port,
            log_config=None,  # structlog owns the logs; uvicorn's own loggers stay quiet
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self._run, name="sdk-http", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as e:  # SystemExit from uvicorn when it cannot bind
            self.error = e

    def start(self) -> None:
        """Start serving; SdkServerFailed (saying why) when it is not up in time."""
        self.thread.start()
        deadline = time.monotonic() + self.START_TIMEOUT_SECONDS
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise SdkServerFailed(
                f"vxp.listen: cannot serve the SDK API on {self.vxp.listen!r} "
                f"({self.error or 'the server stopped'}); is another process using the port?"
            )
        log.info(
            "sdk.listening",
            agency=self.config.agency,
            listen=self.vxp.listen,
            path_prefix=self.vxp.path_prefix,
            systemid=self.vxp.systemid,
        )

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
