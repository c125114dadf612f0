"""The naive relay: the relay's work done one message at a time.

For each outbox message: validate it, then in one transaction insert the document, look up the
recipients, insert one delivery row per recipient, publish each copy and wait for its confirm
(pika BlockingConnection, ``confirm_delivery``), mark the delivery queued, send and record the
accepted receipt, commit; then ack. Same tables, same messages as the relay; no batching, no
streamed confirms. It is the baseline "relay/naive" is measured against, not a correct relay
(a crash after a publish and before the commit would lose the delivery rows).
"""

from __future__ import annotations

import json
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import pika
from sqlalchemy import Engine, func, insert, select, update

from relay.db.engine import make_engine
from relay.db.tables import agencies, deliveries, documents, events, receipts
from relay.domain.outgoing import Outgoing, delivery, receipt_message_id
from schemas import Document, Receipt, ReceiptKind, RecipientOutcome, RecipientResult
from schemas import topology as t
from schemas.envelope import decode_message, encode_message
from tests.bench.env import connection_parameters


def _properties(out: Outgoing) -> pika.BasicProperties:
    return pika.BasicProperties(
        message_id=out.message_id,
        correlation_id=out.correlation_id,
        type=out.message_type,
        delivery_mode=2,
        content_type=t.CONTENT_TYPE,
        headers=dict(out.headers),
    )


def handle(engine: Engine, ch: Any, queue: str, props: Any, body: bytes) -> None:
    """Route one submission; raises on any failure (the caller nacks)."""
    owner = t.agency_of_outbox(queue)
    if owner is None or props.user_id != owner:
        raise ValueError(f"user_id {props.user_id!r} does not own {queue}")
    doc = decode_message(body, expect="document")
    assert isinstance(doc, Document)
    submission = str(props.message_id)
    with engine.begin() as db:
        codes = [str(c) for c in doc.recipient_codes()]
        found = {
            row.code: row
            for row in db.execute(
                select(agencies.c.code, agencies.c.host, agencies.c.state).where(
                    agencies.c.code.in_(codes)
                )
            )
        }
        results = []
        for code in codes:
            row = found.get(code)
            if row is None:
                results.append(RecipientResult(code=code, outcome=RecipientOutcome.UNKNOWN))
            elif row.state != "active":
                results.append(RecipientResult(code=code, outcome=RecipientOutcome.SUSPENDED))
            else:
                route = row.host or row.code
                results.append(
                    RecipientResult(code=code, outcome=RecipientOutcome.QUEUED, route_to=route)
                )
        receipt = Receipt(
            receipt_id=receipt_message_id(submission, ReceiptKind.ACCEPTED.value, by=owner),
            kind=ReceiptKind.ACCEPTED,
            in_reply_to=submission,
            message_type="document",
            document_id=doc.document_id,
            sender=owner,
            recipients=results,
        )
        receipt_body = encode_message(receipt)
        receipt_json = json.loads(receipt_body)
        document_pk = db.execute(
            insert(documents)
            .values(
                message_id=submission,
                document_id=doc.document_id,
                business_type=int(doc.business_type),
                sender=doc.sender.organ_id,
                submitted_by=owner,
                subject=doc.subject,
                payload=body,
            )
            .returning(documents.c.id)
        ).scalar_one()
        for result in results:
            if result.route_to is None:
                continue
            out = delivery(
                submission_id=submission,
                sender=owner,
                recipient=result.code,
                route_to=result.route_to,
                message_type=t.TYPE_DOCUMENT,
                body=body,
            )
            delivery_pk = db.execute(
                insert(deliveries)
                .values(
                    document_pk=document_pk,
                    recipient=result.code,
                    route_to=result.route_to,
                    message_id=out.message_id,
                )
                .returning(deliveries.c.id)
            ).scalar_one()
            # BlockingChannel in confirm mode: returns once the broker confirmed this copy.
            ch.basic_publish(
                t.DELIVER_EXCHANGE, out.routing_key, out.body, _properties(out), mandatory=True
            )
            db.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_pk)
                .values(state="queued", attempts=1, updated_at=func.now())
            )
            db.execute(
                insert(events).values(
                    document_pk=document_pk, delivery_id=delivery_pk, kind="queued", actor="relay"
                )
            )
        ch.basic_publish(
            t.DELIVER_EXCHANGE,
            t.deliver_routing_key(owner),
            receipt_body,
            pika.BasicProperties(
                message_id=str(receipt.receipt_id),
                correlation_id=submission,
                type=t.TYPE_RECEIPT,
                delivery_mode=2,
                content_type=t.CONTENT_TYPE,
            ),
            mandatory=True,
        )
        db.execute(
            insert(receipts).values(
                receipt_id=str(receipt.receipt_id),
                agency=owner,
                in_reply_to=submission,
                kind=receipt.kind.value,
                body=receipt_json,
            )
        )


def _on_message(engine: Engine, queue: str, ch: Any, method: Any, props: Any, body: bytes) -> None:
    try:
        handle(engine, ch, queue, props, body)
    except Exception as e:  # loop boundary: keep the message, say why, go on
        print(f"naive relay: {queue}: {e}", flush=True)
        ch.basic_nack(method.delivery_tag, requeue=False)
        return
    ch.basic_ack(method.delivery_tag)


def run_naive(amqp_url: str, database_url: str, queues: list[str], ready: Connection) -> None:
    """Process entry point. SIGTERM kills it at once (the default action): an open transaction
    rolls back and the broker hands the unacked messages back, which is all a benchmark needs."""
    engine = make_engine(database_url, pool_size=1)
    conn = pika.BlockingConnection(connection_parameters(amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_qos(prefetch_count=10)
    for q in queues:
        ch.basic_consume(q, partial(_on_message, engine, q))
    ready.send(("ready",))
    try:
        ch.start_consuming()
    finally:
        if conn.is_open:
            conn.close()
        engine.dispose()
