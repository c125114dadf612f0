"""``lienthong edxml check FILE... [--json]``: the conformance checker for DMS vendors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lienthong.cli import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "edxml"
QUIRKS = DATA / "quirks"


def _check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["edxml", "check", *args])
    return result.exit_code, result.output


def test_every_file_accepted_exits_0_with_its_warnings() -> None:
    code, out = _check(str(DATA / "document_new.edxml"), str(QUIRKS / "document_quirks.edxml"))
    assert code == 0, out
    assert "document_new.edxml: accepted (document 000.00.00.G22,2016/04/08,1234/VPCP-KSTT)" in out
    assert "warning: edXML/edXMLEnvelope/edXMLHeader/MessageHeader/PromulgationInfo/" in out


def test_json_lists_file_accepted_kind_reasons_and_warnings_and_exits_1_on_a_refusal(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.edxml"
    broken.write_bytes(b'<?xml version="1.0"?>\n<edXML>\n  <From>\n</edXML>\n')
    files = [
        QUIRKS / "status_dashed_document_id.edxml",
        QUIRKS / "format_2803.edxml",
        broken,
        tmp_path / "missing.edxml",
    ]
    code, out = _check("--json", *map(str, files))
    assert code == 1, out
    verdicts = json.loads(out)
    assert [v["file"] for v in verdicts] == [str(f) for f in files]
    assert [(v["accepted"], v["kind"]) for v in verdicts] == [
        (True, "status"),
        (False, None),
        (False, None),
        (False, None),
    ]
    for v in verdicts:
        assert isinstance(v["reasons"], list) and isinstance(v["warnings"], list)
    assert verdicts[0]["reasons"] == [] and verdicts[0]["warnings"]
    assert "older '2803' edXML format" in verdicts[1]["reasons"][0]
    assert "not well-formed XML" in verdicts[2]["reasons"][0]
    assert "line 4" in verdicts[2]["reasons"][0]
    assert verdicts[3]["reasons"][0].startswith("cannot read the file")


def test_a_refusal_lists_every_reason() -> None:
    code, out = _check(str(QUIRKS / "soap_envelope.edxml"))
    assert code == 1
    assert "soap_envelope.edxml: REFUSED\n  reason: the file is a SOAP envelope" in out
