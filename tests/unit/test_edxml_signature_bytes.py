"""Issue 13: a ``Signature`` (QCVN or XML-DSig namespace) and an empty ``DigitalSignature`` are
kept byte for byte, comments and all, and written back identical (adapters/edxml/source.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.edxml import read_package, render_document
from schemas import Document

DATA = Path(__file__).resolve().parents[1] / "data" / "edxml"
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "real"

#: The Signature of a JMeter load-test template (all4u1089/truclienthong-example): the XML-DSig
#: namespace, a commented-out KeyValue, an empty element, tabs and CRLF line ends.
JMETER_SIGNATURE = (
    b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">\r\n'
    b"\t<SignedInfo>\r\n"
    b"\t\t<CanonicalizationMethod\r\n"
    b'\t\t\tAlgorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />\r\n'
    b"\t\t<Reference URI=''><DigestValue>PrlYKdD8sksgnxFvUVtPIQ0pAqM=</DigestValue></Reference>\r\n"
    b"\t</SignedInfo>\r\n"
    b"\t<SignatureValue>GbVb8n9+qFxz466Ag0sbpVdLPs2R0+9JBekp12UyarAZ</SignatureValue>\r\n"
    b"\t<KeyInfo>\r\n"
    b"\t\t<!--<KeyValue>\r\n"
    b"\t\t\t<RSAKeyValue><Exponent>AQAB</Exponent></RSAKeyValue>\r\n"
    b"\t\t</KeyValue>-->\r\n"
    b"\t\t<X509Data>\r\n\t\t<X509SubjectName/>\r\n"
    b"\t\t\t<X509Certificate>MIIGADCCA+igAwIBAgIQVAH4uWORyglxBTv</X509Certificate>\r\n"
    b"\t\t</X509Data>\r\n"
    b"\t</KeyInfo>\r\n"
    b"\t<!--<Object/>-->\r\n"
    b"</Signature>"
)


def with_signature(signature: bytes) -> bytes:
    """The SDK's sample document with ``signature`` in place of its own Signature."""
    data = (DATA / "document_new.edxml").read_bytes()
    start = data.index(b"<Signature>")
    end = data.index(b"</Signature>") + len(b"</Signature>")
    return data[:start] + signature + data[end:]


def round_trip(data: bytes) -> tuple[Document, bytes, Document]:
    first = read_package(data).package
    assert isinstance(first, Document)
    written = render_document(first)
    again = read_package(written).package
    assert isinstance(again, Document)
    return first, written, again


def test_a_jmeter_style_signature_with_commented_key_value_is_kept_and_written_byte_for_byte() -> (
    None
):
    document, written, again = round_trip(with_signature(JMETER_SIGNATURE))
    assert document.signature is not None
    assert document.signature.encode() == JMETER_SIGNATURE
    assert JMETER_SIGNATURE in written
    assert again.signature == document.signature


def test_a_signature_in_the_qcvn_namespace_and_an_empty_digital_signature_are_kept_exactly() -> (
    None
):
    qcvn = (
        "<Signature>\r\n  <SignatureValue>UExBQ0VIT0xERVI=</SignatureValue><!-- ký số -->\r\n"
        "</Signature>"
    ).encode()
    empty = b"<edXML:DigitalSignature  />"
    document, written, again = round_trip(with_signature(qcvn + b"\n" + empty))
    assert document.signature is not None and document.signature.encode() == qcvn
    assert [e.xml for e in document.extensions if "DigitalSignature" in e.xml] == [empty.decode()]
    assert qcvn in written and empty in written
    assert again.signature == document.signature and again.extensions == document.extensions


def test_a_signature_whose_prefix_is_declared_above_it_keeps_its_self_contained_form() -> None:
    signature = b"<ds:Signature><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature>"
    dsig = b' xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
    envelope = b"<edXML:edXMLEnvelope"
    data = with_signature(signature).replace(envelope, envelope + dsig, 1)
    document, _, again = round_trip(data)
    assert document.signature is not None
    assert 'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"' in document.signature
    assert again.signature == document.signature


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in REAL.glob("*.edxml"))
    if REAL.is_dir()
    else [pytest.param("-", marks=pytest.mark.skip(f"{REAL} is absent"))],
)
def test_a_real_packages_signature_is_its_source_bytes_and_written_back_identical(
    name: str,
) -> None:
    data = (REAL / name).read_bytes()
    try:
        document, written, again = round_trip(data)
    except ValueError:
        pytest.skip(f"{name} is refused (tests/unit/test_edxml_real_samples.py)")
    if document.signature is None:
        pytest.skip(f"{name} has no Signature")
    exact = document.signature.encode()
    assert exact in data and exact.startswith(b"<") and exact.endswith(b"Signature>")
    assert exact in written
    assert again.signature == document.signature
