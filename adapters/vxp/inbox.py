"""The broker side's inbox recorder, aware of the relay's directory snapshots.

:class:`DirectoryAwareRecorder` is the :class:`~adapters.inbox.InboxRecorder` of every adapter:
a directory snapshot (AMQP ``type`` = ``directory``, :mod:`schemas.directory`) is kept in the
SDK connector's tables and acked; every other delivery is recorded in the received-item store
as before. Which connector then hands received items to the DMS is the daemon's choice
(:mod:`adapters.daemon`): the SDK connector when ``[vxp]`` is configured, else the folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from adapters.config import AdapterConfig
from adapters.inbox import Action, Delivery, InboxRecorder, RenderCheck
from adapters.spool import Spool, SpoolError
from adapters.vxp.store import SdkStore
from schemas import Document, Receipt, Status
from schemas.directory import TYPE_DIRECTORY, decode_snapshot

log = structlog.get_logger()


class DirectoryAwareRecorder(InboxRecorder):
    """Records deliveries; keeps directory snapshots instead of recording them."""

    def __init__(
        self,
        config: AdapterConfig,
        spool: Spool,
        *,
        check: RenderCheck | None = None,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, spool, check=check, on_recorded=on_recorded)
        self.sdk = SdkStore(spool)

    def handle_batch(self, deliveries: list[Delivery]) -> list[Action]:
        actions: list[Action] = [Action.REJECT] * len(deliveries)
        others: list[int] = []
        for i, delivery in enumerate(deliveries):
            if delivery.message_type == TYPE_DIRECTORY:
                actions[i] = self._directory(delivery)
            else:
                others.append(i)
        if others:
            results = super().handle_batch([deliveries[i] for i in others])
            for i, action in zip(others, results, strict=True):
                actions[i] = action
        return actions

    def _directory(self, delivery: Delivery) -> Action:
        try:
            snapshot = decode_snapshot(delivery.body)
        except ValueError as e:
            log.error("directory.invalid", agency=self.config.agency, reason=str(e))
            return Action.REJECT
        try:
            replaced = self.sdk.replace_directory(snapshot)
        except SpoolError as e:
            log.error("directory.store_failed", agency=self.config.agency, reason=str(e))
            return Action.REJECT
        log.info(
            "directory.updated" if replaced else "directory.unchanged",
            agency=self.config.agency,
            version=snapshot.version,
            agencies=len(snapshot.agencies),
        )
        return Action.ACK


def edxml_check(
    write_document: Callable[[Document, Mapping[str, object]], bytes],
    write_status: Callable[[Status], bytes],
) -> RenderCheck:
    """The check of a delivery the SDK connector will hand over as edXML: it must render."""

    def check(message: Document | Status | Receipt, headers: Mapping[str, object]) -> None:
        if isinstance(message, Document):
            write_document(message, headers)
        elif isinstance(message, Status):
            write_status(message)

    return check
