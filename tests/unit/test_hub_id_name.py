"""A hub id's name is exactly the JSON list it always was: ids the relay derived before must come
out the same (relay/domain/outgoing.py)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from relay.domain.outgoing import delivery_message_id, hub_id_name

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)))


@given(_TEXT, _TEXT, st.lists(_TEXT, max_size=4))
def test_the_name_is_the_json_list_of_its_parts(kind: str, agency: str, parts: list[str]) -> None:
    expected = json.dumps([kind, agency, *parts], ensure_ascii=False)
    assert hub_id_name(kind, agency, *parts) == expected


def test_a_delivery_id_is_the_one_derived_before() -> None:
    # Computed with json.dumps before the name was built by hand; it must never change.
    assert (
        delivery_message_id('Số 12/UBND-VP \\ "x"\n', "000.00.00.B01", by="000.00.00.A01")
        == "d04ddbf2-a648-5589-9439-82efafa5257b"
    )
