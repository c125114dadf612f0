"""The SDK API's OpenAPI description for DMS vendors, without running an adapter.

``python -m adapters.vxp.openapi > docs/vxp-openapi.json`` writes the committed copy (a test
keeps it current); a running adapter serves its own at ``<path_prefix>/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from adapters.config import AdapterConfig, VxpConfig
from adapters.formats.registry import get_format
from adapters.vxp.app import create_app

#: The example values the published description is generated with.
EXAMPLE_AGENCY = "000.00.00.H41"
EXAMPLE_PREFIX = "/XrdAdapter/adapter"


def openapi_document() -> dict[str, Any]:
    """The description of an adapter configured like the issue's example ``[vxp]``."""
    config = AdapterConfig(
        agency=EXAMPLE_AGENCY,
        amqp_url="amqp://127.0.0.1:5672/lienthong",
        root=Path("/var/lib/lienthong/H41"),
        vxp=VxpConfig(
            listen="127.0.0.1:8280",
            path_prefix=EXAMPLE_PREFIX,
            systemid="dms-h41",
            secret_file=Path("/etc/lienthong/H41.vxp-secret"),
            secret=SecretStr("not-a-secret"),
        ),
    )
    document: dict[str, Any] = create_app(config, get_format("edxml")).openapi()
    return document


def main() -> None:
    json.dump(openapi_document(), sys.stdout, ensure_ascii=False, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
