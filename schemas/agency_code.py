"""Agency codes (mã định danh, edXML ``OrganId``).

QCVN 102:2016 codes read right to left (``000.00.00.G22``); real directories also hold codes
that break that pattern and the newer QĐ 20/2020 left-to-right form (``H01.151.01``). Any code
of the lenient form is accepted into the directory and stored verbatim; strictness is reported,
not enforced.

The codes a *message* names (``OrganId`` of From, To, ResponseFor, TraceHeader…) are wider
still: the national axis also uses lower-case system codes (``vxp.saas.03``), 3-segment test
codes (``14.00.W00``) and Party codes (``000.00.01.A53``). A message is never refused for its
code's shape (``OrganId``): only routing can say a recipient is unknown. A value with spaces or
control characters is not a code at all (a template's placeholder text, say) and is refused.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

STRICT_PATTERN = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-K]\d{2}$")
LENIENT_PATTERN = re.compile(r"^[0-9A-Z]{1,4}(\.[0-9A-Z]{1,4}){1,4}$")
#: What a message may name as an agency: up to 100 printable characters, no spaces. RabbitMQ
#: routing keys and header values carry it as it is, so nothing here can break them.
ORGAN_ID_MAX = 100


def is_strict_qcvn102(code: str) -> bool:
    """True when ``code`` has the strict QCVN 102:2016 form ``DDD.DD.DD.XDD``."""
    return STRICT_PATTERN.fullmatch(code) is not None


#: Codes already found acceptable: the same few codes are checked for every message.
_ACCEPTED: set[str] = set()
_ACCEPTED_MAX = 100_000


def validate_agency_code(code: str) -> str:
    """Return ``code`` unchanged if it is an acceptable agency code, else raise ValueError."""
    if not isinstance(code, str):
        raise ValueError(f"{code!r} is not an agency code: expected a string")
    if code in _ACCEPTED:
        return code
    if LENIENT_PATTERN.fullmatch(code) is None:
        raise ValueError(
            f"{code!r} is not an agency code: expected dot-separated groups of 1-4 digits or "
            "capital letters, e.g. '000.00.00.G22' (QCVN 102:2016) or 'H01.151' (QĐ 20/2020)"
        )
    if len(_ACCEPTED) >= _ACCEPTED_MAX:
        _ACCEPTED.clear()
    _ACCEPTED.add(code)
    return code


AgencyCode = Annotated[str, AfterValidator(validate_agency_code)]


def validate_organ_id(code: str) -> str:
    """``code`` unchanged if a message may name it as an agency, else ValueError.

    Any code the axis uses passes (see the module docstring); placeholder text does not.
    """
    if not isinstance(code, str):
        raise ValueError(f"{code!r} is not an agency code: expected a string")
    if code in _ACCEPTED:
        return code
    if not code:
        raise ValueError("the agency code is empty")
    if len(code) > ORGAN_ID_MAX:
        raise ValueError(
            f"{code[:40]!r}… is not an agency code: it is {len(code)} characters long, "
            f"at most {ORGAN_ID_MAX} expected"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in code):
        raise ValueError(
            f"{code!r} is not an agency code: it holds spaces or control characters; expected "
            "a code such as '000.00.00.G22'"
        )
    return code


OrganId = Annotated[str, AfterValidator(validate_organ_id)]
