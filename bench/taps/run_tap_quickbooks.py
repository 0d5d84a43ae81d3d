"""Run tap-quickbooks 2.5.0 against the QuickBooks emulator; executed by the tap venv's python, not Nudge's.

Usage: python run_tap_quickbooks.py EMULATOR_URL [tap arguments: --config ... --catalog ... | --discover]

No installed file is edited: the tap is redirected through its module-level globals in `tap_quickbooks.client`,
which it reads at call time: `PROD_ENDPOINT_BASE` (and `SANDBOX_ENDPOINT_BASE`), the base of every API call
(`{base}/v3/company/{realm}/batch`), and `TOKEN_REFRESH_URL`, where requests-oauthlib posts the refresh the tap
forces at start (a form-encoded body carrying client_id and client_secret: `client_secret_post`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

TOKEN_PATH = "/oauth2/v1/tokens/bearer"


def redirect(client: Any, emulator_url: str) -> None:
    """Point the `tap_quickbooks.client` module at the emulator."""
    client.PROD_ENDPOINT_BASE = emulator_url
    client.SANDBOX_ENDPOINT_BASE = emulator_url
    client.TOKEN_REFRESH_URL = f"{emulator_url}{TOKEN_PATH}"


def main(argv: list[str]) -> None:
    """Redirect the tap to the emulator at argv[0], then run the tap's own main with the remaining arguments."""
    emulator_url, *tap_arguments = argv
    # oauthlib refuses plain http; the emulator listens on loopback only.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    import tap_quickbooks
    import tap_quickbooks.client

    redirect(tap_quickbooks.client, emulator_url.rstrip("/"))
    sys.argv = ["tap-quickbooks", *tap_arguments]
    tap_quickbooks.main()


if __name__ == "__main__":
    main(sys.argv[1:])
