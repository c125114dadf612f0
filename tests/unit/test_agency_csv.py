"""Checking a directory CSV: every bad row is named by line, field and value."""

from __future__ import annotations

import pytest

from relay.directory.csv_rows import CsvInvalid, CsvRow, check_hosts, decode, parse_rows
from relay.directory.model import Agency

HEADER = "code,name,host\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(CsvInvalid) as caught:
        parse_rows(text, "agencies.csv")
    return [str(e) for e in caught.value.errors]


def test_a_valid_file_gives_one_row_per_line_with_its_line_number() -> None:
    rows = parse_rows(
        HEADER + "000.00.00.G22,Văn phòng Chính phủ,\n"
        '000.00.01.H26,"Văn phòng UBND, Hà Nội",000.00.00.H26\n'
    )
    assert rows == [
        CsvRow(2, "000.00.00.G22", "Văn phòng Chính phủ", None),
        CsvRow(3, "000.00.01.H26", "Văn phòng UBND, Hà Nội", "000.00.00.H26"),
    ]


def test_every_bad_row_is_reported_with_line_field_and_value() -> None:
    errors = errors_of(
        HEADER
        + "000.00.00.G22,Văn phòng Chính phủ,\n"
        + "not a code,Bộ X,\n"
        + "000.00.00.G12,,\n"
        + "000.00.01.H26,Sở Y,h26\n"
        + "000.00.00.G13,Bộ Nội vụ,,extra\n"
    )
    assert len(errors) == 4
    assert errors[0].startswith("line 3: code 'not a code': ")
    assert errors[1] == "line 4: name '': must not be empty"
    assert errors[2].startswith("line 5: host 'h26': ")
    assert errors[3].startswith("line 6: row '000.00.00.G13,Bộ Nội vụ,,extra': has 4 field(s)")


def test_the_message_of_an_invalid_file_lists_all_errors_and_says_nothing_was_imported() -> None:
    with pytest.raises(CsvInvalid) as caught:
        parse_rows(HEADER + "x,Bộ X,\ny,Bộ Y,\n", "agencies.csv")
    message = str(caught.value)
    assert "agencies.csv: 2 bad row(s), nothing imported" in message
    assert "line 2: code 'x'" in message
    assert "line 3: code 'y'" in message


def test_a_code_listed_twice_names_both_lines() -> None:
    errors = errors_of(HEADER + "000.00.00.G22,A,\n000.00.00.G22,B,\n")
    assert errors == ["line 3: code '000.00.00.G22': appears twice (first on line 2)"]


def test_a_unit_hosted_by_itself_is_refused() -> None:
    errors = errors_of(HEADER + "000.00.00.G22,A,000.00.00.G22\n")
    assert errors[0].startswith("line 2: host '000.00.00.G22': is the agency itself")


def test_a_wrong_header_is_reported_as_line_one() -> None:
    errors = errors_of("ma,ten,don_vi_chu_quan\n000.00.00.G22,A,\n")
    assert errors == ["line 1: header 'ma,ten,don_vi_chu_quan': expected 'code,name,host'"]


def test_line_numbers_count_physical_lines_across_quoted_newlines_and_blank_lines() -> None:
    errors = errors_of(HEADER + '000.00.00.G22,"two\nlines",\n\nbad,x,\n')
    assert errors[0] == "line 2: name 'two\\nlines': contains control characters"
    assert errors[1].startswith("line 5: code 'bad'")


def test_lenient_codes_are_accepted_verbatim() -> None:
    rows = parse_rows(HEADER + "000.00.101.H05,A,\nH01.151.01,B,\n001.00.20.TT2,C,\n")
    assert [r.code for r in rows] == ["000.00.101.H05", "H01.151.01", "001.00.20.TT2"]


def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte() -> None:
    data = (HEADER + "000.00.00.G22,A,\n000.00.00.G12,").encode() + b"B\xff\xfe"
    with pytest.raises(CsvInvalid) as caught:
        decode(data, "agencies.csv")
    assert str(caught.value.errors[0]).startswith("line 3: encoding ")


def test_a_byte_order_mark_is_accepted() -> None:
    assert parse_rows(decode(("\ufeff" + HEADER + "000.00.00.G22,A,\n").encode(), "f"))


def test_a_host_may_be_defined_later_in_the_file() -> None:
    rows = parse_rows(HEADER + "000.00.01.H26,Unit,000.00.00.H26\n000.00.00.H26,Host,\n")
    check_hosts(rows, {})


def test_a_host_that_is_itself_hosted_in_the_file_is_refused() -> None:
    rows = parse_rows(
        HEADER + "000.00.00.H26,Host,\n000.00.01.H26,Unit,000.00.00.H26\n"
        "000.00.02.H26,Sub-unit,000.00.01.H26\n"
    )
    with pytest.raises(CsvInvalid) as caught:
        check_hosts(rows, {})
    assert [str(e) for e in caught.value.errors] == [
        "line 4: host '000.00.01.H26': is itself hosted by '000.00.00.H26' (line 3); "
        "a host must be a connected agency"
    ]


def test_a_host_found_neither_in_the_file_nor_in_the_directory_is_refused() -> None:
    rows = parse_rows(HEADER + "000.00.01.H26,Unit,000.00.00.H26\n000.00.01.H29,U,000.00.00.H29\n")
    directory = {"000.00.00.H29": Agency("000.00.00.H29", "HCM", None, "active", True)}
    with pytest.raises(CsvInvalid) as caught:
        check_hosts(rows, directory)
    assert [str(e) for e in caught.value.errors] == [
        "line 2: host '000.00.00.H26': is neither in this file nor in the directory"
    ]


def test_import_provisions_new_connected_agencies_and_those_without_a_user() -> None:
    from relay.directory.bulk import provision_targets

    rows = parse_rows(
        HEADER + "000.00.00.G22,New,\n000.00.00.G12,Loaded without broker objects,\n"
        "000.00.00.G13,Fully provisioned,\n000.00.01.G13,Hosted unit,000.00.00.G13\n"
        "000.00.00.G15,New but its user exists,\n"
    )
    targets = provision_targets(
        rows,
        new_connected=["000.00.00.G22", "000.00.00.G15"],
        users={"000.00.00.G13", "000.00.00.G15", "guest"},
    )
    assert targets == ["000.00.00.G22", "000.00.00.G12", "000.00.00.G15"]
