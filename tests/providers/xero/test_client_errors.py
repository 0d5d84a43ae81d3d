"""Every hostile Xero answer becomes the right connector error, one canned answer per test.

xero-python speaks urllib3 directly, which `responses` cannot intercept (it patches `requests`), so the
canned answers come from a tiny stdlib HTTP server on 127.0.0.1 instead. GETs are retried on 5xx and
unreadable bodies; the server gives the same answer every time and the sleeps are recorded, not slept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connector.errors import AuthError, NotFound, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSet
from providers.xero.client import RateLimiter, XeroClient
from providers.xero.oauth import FixedTokens

TENANT = "8d3f2c4e-0000-4000-8000-000000000001"
OVERSIZED = 4 * 1024 * 1024


@dataclass
class Canned:
    """The one answer the server gives to every request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    requests: int = 0


class _Handler(BaseHTTPRequestHandler):
    canned: Canned

    def _answer(self) -> None:
        self.canned.requests += 1
        self.send_response(self.canned.status)
        for name, value in self.canned.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(self.canned.body)))
        self.end_headers()
        self.wfile.write(self.canned.body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return None


@pytest.fixture
def canned() -> Iterator[tuple[Canned, str]]:
    answer = Canned()
    handler = type("Handler", (_Handler,), {"canned": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield answer, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(canned: tuple[Canned, str]) -> XeroClient:
    _, base = canned
    settings = ProviderSettings(
        key="xero",
        client_id="client-id",
        client_secret="client-secret",
        redirect_uri="https://nudge.invalid/callback",
        api_base=f"{base}/api.xro/2.0",
        identity_base=base,
    )
    tokens = TokenSet("access-token", "refresh-token", datetime.now(UTC) + timedelta(hours=1))
    limiter = RateLimiter(sleep=lambda _seconds: None)
    return XeroClient(TENANT, FixedTokens(tokens), settings, limiter=limiter, jitter=lambda: 0.0)


def _set(canned: tuple[Canned, str], status: int, body: bytes, content_type: str, **headers: str) -> Canned:
    answer = canned[0]
    answer.status, answer.body = status, body
    answer.headers = {"Content-Type": content_type, **headers}
    return answer


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        pytest.param(401, b'{"Title":"Unauthorized"}', "application/json", AuthError, id="401"),
        pytest.param(403, b'{"Title":"Forbidden"}', "application/json", AuthError, id="403"),
        pytest.param(
            404, b"<html>The resource you're looking for cannot be found</html>", "text/html", NotFound, id="404"
        ),
        pytest.param(400, b'{"Message":"A validation exception occurred"}', "application/json", Rejected, id="400"),
        pytest.param(500, b'{"oops":', "application/json", Transient, id="500"),
        pytest.param(503, b"<html>Service Unavailable</html>", "text/html", Transient, id="503-html"),
        pytest.param(200, b'{"InvoiceReminders": [{"Enabled": tr', "application/json", Transient, id="garbled-json"),
        pytest.param(200, b"<!doctype html><title>Maintenance</title>", "text/html", Transient, id="html-200"),
        pytest.param(200, b"\\xff\\xfe" * 10 + b"x" * OVERSIZED, "application/json", Transient, id="oversized"),
        pytest.param(400, b"<html>" + b"x" * OVERSIZED + b"</html>", "text/html", Rejected, id="oversized-400"),
    ],
)
def test_hostile_answers_become_the_right_connector_error(
    canned: tuple[Canned, str],
    client: XeroClient,
    status: int,
    body: bytes,
    content_type: str,
    expected: type[ProviderError],
) -> None:
    _set(canned, status, body, content_type)
    with pytest.raises(ProviderError) as info:
        client.call("get_invoice_reminders").json()
    assert isinstance(info.value, expected)
    assert info.value.provider == "xero"
    assert len(info.value.user_message) < 600  # the body never leaks into the message whole
    assert "Maintenance" not in info.value.user_message


def test_429_with_a_long_retry_after_hands_the_wait_to_the_scheduler(
    canned: tuple[Canned, str], client: XeroClient
) -> None:
    answer = _set(canned, 429, b"", "text/plain", **{"Retry-After": "300", "X-Rate-Limit-Problem": "minute"})
    with pytest.raises(RateLimited) as info:
        client.call("get_invoice_reminders")
    assert info.value.retry_after == 300.0
    assert info.value.limit == "minute"
    assert answer.requests == 1


def test_429_daily_limit_is_rate_limited_for_the_day(canned: tuple[Canned, str], client: XeroClient) -> None:
    _set(canned, 429, b"", "text/plain", **{"Retry-After": "4000", "X-Rate-Limit-Problem": "day"})
    with pytest.raises(RateLimited) as info:
        client.call("get_invoice_reminders")
    assert info.value.limit == "day"
    assert info.value.retry_after == 4000.0


def test_401_is_refreshed_once_then_auth_error(canned: tuple[Canned, str], client: XeroClient) -> None:
    answer = _set(canned, 401, b"", "text/plain")
    with pytest.raises(AuthError):
        client.call("get_invoice_reminders")
    assert answer.requests == 1  # the callback's tokens cannot be refreshed: no second call


def test_a_good_answer_is_read(canned: tuple[Canned, str], client: XeroClient) -> None:
    _set(canned, 200, b'{"InvoiceReminders": [{"Enabled": true}]}', "application/json")
    assert client.call("get_invoice_reminders").json() == {"InvoiceReminders": [{"Enabled": True}]}
