"""Run tap-xero 2.6.0 against the Xero emulator; executed by the tap venv's python, not Nudge's.

Usage: python run_tap_xero.py EMULATOR_URL [tap arguments: --config ... --catalog ... | --discover]

No installed file is edited. API calls go to `tap_xero.client.BASE_URL`, a module-level global read at call time,
set here to the emulator's `/api.xro/2.0`. The token refresh (Basic client credentials, form-encoded
`grant_type=refresh_token`) posts to the literal "https://identity.xero.com/connect/token", which no global
holds, so each `XeroClient`'s requests session gets a transport adapter mounted for Xero's identity host that
sends those requests to the emulator's identity endpoints instead (same path, same headers and body).

`--discover` runs the tap's own `discover` without its access probe (a token refresh and GET /Currencies, an
endpoint the emulator does not serve): the catalog is built from the tap's schemas and metadata all the same.
"""

from __future__ import annotations

import sys
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

XERO_IDENTITY = "https://identity.xero.com/"


class IdentityToEmulator(HTTPAdapter):
    """A transport for Xero's identity host that sends each request to the same path on the emulator."""

    def __init__(self, emulator_url: str) -> None:
        super().__init__()
        self.emulator_url = emulator_url.rstrip("/")

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Rewrite the URL's host part, keep everything else of the request."""
        url = request.url or ""
        if url.startswith(XERO_IDENTITY):
            request.url = f"{self.emulator_url}/{url[len(XERO_IDENTITY) :]}"
        return super().send(request, *args, **kwargs)


def redirect(client: Any, emulator_url: str) -> None:
    """Point the `tap_xero.client` module at the emulator: its API base and its clients' identity requests."""
    emulator_url = emulator_url.rstrip("/")
    client.BASE_URL = f"{emulator_url}/api.xro/2.0"
    make_client = client.XeroClient.__init__

    def init_with_redirect(self: Any, config: dict[str, Any]) -> None:
        make_client(self, config)
        self.session.mount(XERO_IDENTITY, IdentityToEmulator(emulator_url))

    client.XeroClient.__init__ = init_with_redirect


class _WithoutAccessProbe:
    """The one thing tap-xero's `discover(ctx)` asks of its context besides building the catalog."""

    def check_platform_access(self) -> None:
        """Skipped: the probe reads /Currencies, which the emulator does not serve."""


def main(argv: list[str]) -> None:
    """Redirect the tap to the emulator at argv[0], then run the tap's own main with the remaining arguments."""
    emulator_url, *tap_arguments = argv
    import tap_xero
    import tap_xero.client

    redirect(tap_xero.client, emulator_url)
    if "--discover" in tap_arguments:
        tap_xero.discover(_WithoutAccessProbe()).dump()
        return
    sys.argv = ["tap-xero", *tap_arguments]
    tap_xero.main()


if __name__ == "__main__":
    main(sys.argv[1:])
