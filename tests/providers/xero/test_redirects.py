"""No Xero call follows a redirect (RS-36, issue 10 item 11): a 307 would re-post a code or refresh token.

Two stdlib servers on 127.0.0.1: "xero" answers every request with a 307 to "elsewhere", which counts
what reaches it. Token exchange, refresh, revocation, the JWKS fetch, GET /connections and an API call
must all stop at the redirect with a connector error, and "elsewhere" must see nothing. The process-wide
OAUTHLIB_INSECURE_TRANSPORT switch is never flipped by the Xero provider.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connector.errors import ProviderError
from connector.ports import ProviderSettings, TokenSet
from providers.xero import adapter, oauth, openid
from providers.xero.client import RateLimiter, XeroClient
from providers.xero.oauth import FixedTokens

TENANT = "8d3f2c4e-0000-4000-8000-000000000002"


@dataclass
class Hits:
    count: int = 0


def _serve(answer: Callable[[BaseHTTPRequestHandler], None]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer(self)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def redirecting() -> Iterator[tuple[str, Hits]]:
    hits = Hits()

    def elsewhere(handler: BaseHTTPRequestHandler) -> None:
        hits.count += 1
        body = b'{"access_token": "stolen", "keys": []}'
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    target, target_thread = _serve(elsewhere)

    def xero(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    source, source_thread = _serve(xero)
    try:
        yield f"http://127.0.0.1:{source.server_address[1]}", hits
    finally:
        for server, thread in ((source, source_thread), (target, target_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _settings(base: str) -> ProviderSettings:
    return ProviderSettings(
        key="xero",
        client_id="client",
        client_secret="secret",
        redirect_uri="http://127.0.0.1:9/cb",
        api_base=f"{base}/api.xro/2.0",
        identity_base=base,
    )


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tokens() -> TokenSet:
    # A well-formed RS256 ID token, so that verifying it needs the JWKS.
    id_token = ".".join((_b64({"alg": "RS256", "kid": "k1"}), _b64({"sub": "u1"}), _b64(b"signature")))
    return TokenSet(
        access_token="a.eyJhdXRoZW50aWNhdGlvbl9ldmVudF9pZCI6ICJlMSJ9.c",
        refresh_token="refresh-secret",
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
        id_token=id_token,
    )


CALLS: dict[str, Callable[[ProviderSettings], object]] = {
    "code exchange": lambda s: oauth.exchange_code(s, {"code": "the-code"}, "verifier", datetime.now(UTC)),
    "refresh": lambda s: oauth.refresh(s, _tokens(), datetime.now(UTC)),
    "revocation": lambda s: oauth.revoke(s, _tokens()),
    "jwks": lambda s: openid.identify(s, _tokens(), "", datetime.now(UTC)),
    "connections": lambda s: adapter.connect(s, {}, _tokens()),
    "api call": lambda s: XeroClient(TENANT, FixedTokens(_tokens()), s, limiter=RateLimiter(sleep=lambda _: None)).call(
        "get_invoice_reminders"
    ),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_no_xero_call_follows_a_redirect(redirecting: tuple[str, Hits], call: str) -> None:
    base, hits = redirecting
    with pytest.raises(ProviderError):
        CALLS[call](_settings(base))
    assert hits.count == 0


def test_the_xero_provider_never_switches_insecure_transport_on_for_the_process() -> None:
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    package = Path(adapter.__file__).resolve().parent
    for source in package.rglob("*.py"):
        assert "OAUTHLIB_INSECURE_TRANSPORT" not in source.read_text(), source
