"""Routing rules: recipients through the directory, who may send, which delivery a status is for."""

from __future__ import annotations

from relay.domain.intake import Envelope, Refusal, read_submission
from relay.domain.routing import Entry, resolve_recipient, sender_refusal
from relay.domain.statuses import DeliveryRef, StatusRoute, route_status
from schemas import Document, RecipientOutcome, encode_message

A, B, C, UNIT = "000.00.00.A01", "000.00.00.B01", "000.00.00.C01", "000.00.01.C01"
DIRECTORY = {
    A: Entry(A, None, "active"),
    B: Entry(B, None, "suspended"),
    C: Entry(C, None, "active"),
    UNIT: Entry(UNIT, C, "active"),
    "000.00.02.C01": Entry("000.00.02.C01", "000.00.09.Z01", "active"),
}


def test_a_hosted_unit_is_routed_to_its_hosts_inbox() -> None:
    r = resolve_recipient(UNIT, DIRECTORY)
    assert (r.outcome, r.route_to) == (RecipientOutcome.QUEUED, C)


def test_unknown_suspended_and_hostless_recipients_are_reported_with_a_reason() -> None:
    assert resolve_recipient("999.99.99.K99", DIRECTORY).outcome is RecipientOutcome.UNKNOWN
    suspended = resolve_recipient(B, DIRECTORY)
    assert suspended.outcome is RecipientOutcome.SUSPENDED and B in (suspended.reason or "")
    orphan = resolve_recipient("000.00.02.C01", DIRECTORY)
    assert orphan.outcome is RecipientOutcome.NOT_ROUTABLE and orphan.route_to is None


def test_a_unit_whose_host_is_suspended_is_reported_suspended() -> None:
    directory = {**DIRECTORY, C: Entry(C, None, "suspended")}
    assert resolve_recipient(UNIT, directory).outcome is RecipientOutcome.SUSPENDED


def test_a_host_cycle_does_not_loop() -> None:
    directory = {"1.1": Entry("1.1", "1.2", "active"), "1.2": Entry("1.2", "1.1", "active")}
    assert resolve_recipient("1.1", directory).outcome is RecipientOutcome.NOT_ROUTABLE


def test_an_agency_may_send_as_itself_or_a_unit_it_hosts_only() -> None:
    assert sender_refusal(C, C, DIRECTORY) is None
    assert sender_refusal(C, UNIT, DIRECTORY) is None
    refusal = sender_refusal(A, UNIT, DIRECTORY)
    assert refusal is not None and UNIT in refusal and "sender.organ_id" in refusal


def _env(**kw: object) -> Envelope:
    doc = Document.model_validate(
        {"document_id": "X", "sender": {"organ_id": A}, "recipients": [{"organ_id": C}]}
    )
    base: dict[str, object] = {
        "owner": A,
        "message_id": "m-1",
        "user_id": A,
        "message_type": "document",
        "body": encode_message(doc),
    }
    base.update(kw)
    return Envelope(**base)  # type: ignore[arg-type]


def test_a_valid_submission_is_decoded() -> None:
    assert isinstance(read_submission(_env(), 10_000), Document)


def test_a_missing_or_foreign_user_id_is_refused_naming_it() -> None:
    missing = read_submission(_env(user_id=None), 10_000)
    assert isinstance(missing, Refusal) and "user_id" in missing.reason
    forged = read_submission(_env(user_id="guest"), 10_000)
    assert isinstance(forged, Refusal) and "'guest'" in forged.reason


def test_invalid_json_a_schema_failure_and_an_oversized_body_are_refused() -> None:
    bad_json = read_submission(_env(body=b"{not json"), 10_000)
    assert isinstance(bad_json, Refusal) and "JSON" in bad_json.reason
    bad_schema = read_submission(_env(body=b'{"schema": "lienthong.document/1"}'), 10_000)
    assert isinstance(bad_schema, Refusal) and "document_id" in bad_schema.reason
    too_big = read_submission(_env(), 10)
    assert isinstance(too_big, Refusal) and "limit" in too_big.reason


def test_a_type_that_does_not_match_the_body_is_refused() -> None:
    result = read_submission(_env(message_type="status"), 10_000)
    assert isinstance(result, Refusal) and "status" in result.reason


def _ref(pk: int, recipient: str, state: str = "queued", business: int = 0) -> DeliveryRef:
    return DeliveryRef(pk * 10, pk, A, A, business, recipient, recipient, state)


def test_a_status_goes_to_the_document_sender_about_the_recipients_delivery() -> None:
    route = route_status(
        document_id="X",
        code="03",
        status_sender=C,
        addressee=A,
        candidates=[_ref(1, B), _ref(1, C)],
        document_known=True,
    )
    assert isinstance(route, StatusRoute)
    assert (route.delivery.recipient, route.addressee, route.route_to) == (C, A, A)


def test_a_status_from_a_non_recipient_or_about_an_unknown_document_is_refused() -> None:
    refused = route_status(
        document_id="X",
        code="03",
        status_sender=B,
        addressee=A,
        candidates=[_ref(1, C)],
        document_known=True,
    )
    assert isinstance(refused, Refusal) and "not a recipient" in refused.reason
    unknown = route_status(
        document_id="Y",
        code="01",
        status_sender=C,
        addressee=A,
        candidates=[],
        document_known=False,
    )
    assert isinstance(unknown, Refusal) and "'Y'" in unknown.reason


def test_a_take_back_request_comes_from_the_sender_and_goes_to_the_recipient() -> None:
    route = route_status(
        document_id="X",
        code="13",
        status_sender=A,
        addressee=C,
        candidates=[_ref(1, C)],
        document_known=True,
    )
    assert isinstance(route, StatusRoute) and (route.addressee, route.route_to) == (C, C)
    not_sender = route_status(
        document_id="X",
        code="13",
        status_sender=C,
        addressee=C,
        candidates=[_ref(1, C)],
        document_known=True,
    )
    assert isinstance(not_sender, Refusal)


def test_01_prefers_an_undelivered_copy_and_other_codes_prefer_the_original() -> None:
    original = _ref(1, C, state="delivered")
    revoke = _ref(2, C, state="queued", business=1)
    kw = {"document_id": "X", "status_sender": C, "addressee": A, "document_known": True}
    first = route_status(code="01", candidates=[original, revoke], **kw)  # type: ignore[arg-type]
    later = route_status(code="05", candidates=[original, revoke], **kw)  # type: ignore[arg-type]
    assert isinstance(first, StatusRoute) and first.delivery == revoke
    assert isinstance(later, StatusRoute) and later.delivery == original


def test_an_attachment_is_checked_once_and_its_text_not_kept_beside_the_body() -> None:
    from schemas import Attachment, Organization

    raw = b"%PDF-1.7 scanned page" * 1000
    good = Attachment.from_bytes("cv.pdf", raw, "application/pdf")
    doc = Document(
        document_id="X",
        sender=Organization(organ_id=A),
        recipients=[Organization(organ_id=C)],
        attachments=[good],
    )
    body = encode_message(doc)
    decoded = read_submission(_env(body=body), 1_000_000)
    assert isinstance(decoded, Document)
    [kept] = decoded.attachments
    assert (kept.size, kept.sha256, kept.data) == (len(raw), good.sha256, "")
    bad = body.replace(good.sha256.encode(), b"0" * 64)
    refused = read_submission(_env(body=bad), 1_000_000)
    assert isinstance(refused, Refusal) and "sha256" in refused.reason


def _with_subject(subject: str) -> bytes:
    doc = Document.model_validate(
        {"document_id": "X", "sender": {"organ_id": A}, "recipients": [{"organ_id": C}]}
    )
    doc.subject = subject
    return encode_message(doc)


def test_a_nul_in_a_text_field_is_refused_and_an_escaped_backslash_is_not_one() -> None:
    assert b"\\" not in _env().body  # UTF-8 text, no escape: never searched for a NUL
    assert isinstance(read_submission(_env(), 10_000), Document)
    for subject in ("Về việc\u0000thử", 'a "quoted" \u0000', "\\ then \u0000"):
        refused = read_submission(_env(body=_with_subject(subject)), 10_000)
        assert isinstance(refused, Refusal) and "NUL" in refused.reason, subject
    # A backslash followed by the text "u0000" is six characters, not a NUL.
    body = _with_subject("\\u0000")
    assert b"\\\\u0000" in body
    assert isinstance(read_submission(_env(body=body), 10_000), Document)
