"""The automatic status 01 (Đã đến): the answer to a document once the DMS has it.

Pure: builds the status and its message id; the received-item store spools it when a connector
marks the document taken (:meth:`adapters.received.ReceivedStore.mark_taken`).
"""

from __future__ import annotations

import datetime as dt
import uuid

from schemas import Document, Organization, ResponseFor, Status, describe_status

#: Namespace of the ids the adapter derives (uuid5); never change it.
ADAPTER_NAMESPACE = uuid.UUID("0b6f4b8e-2d0c-5a57-8c1e-7a4f3e9d2b61")
#: Vietnam time, for the timestamps a person reads in the DMS.
ICT = dt.timezone(dt.timedelta(hours=7), "ICT")


def reply_status_id(delivery_id: str) -> str:
    """The message id of the automatic status 01 answering delivery ``delivery_id``."""
    return str(uuid.uuid5(ADAPTER_NAMESPACE, f"status01/{delivery_id}"))


def arrival_status(document: Document, recipient: str, now: dt.datetime | None = None) -> Status:
    """Status 01 (Đã đến) from ``recipient`` (maybe a hosted unit) to the document's sender."""
    name = next((r.organ_name for r in document.recipients if r.organ_id == recipient), None)
    code = None
    promulgation_date = None
    if document.code is not None and document.code.code_number is not None:
        code = document.code.code_number
        if document.code.code_notation:
            code += "/" + document.code.code_notation
    if document.promulgation_info is not None:
        promulgation_date = document.promulgation_info.promulgation_date
    return Status(
        sender=Organization(organ_id=recipient, organ_name=name),
        response_for=ResponseFor(
            organ_id=document.sender.organ_id,
            code=code,
            promulgation_date=promulgation_date,
            document_id=document.document_id,
        ),
        status_code="01",
        description=describe_status("01"),
        timestamp=(now or dt.datetime.now(ICT)).replace(microsecond=0),
    )
