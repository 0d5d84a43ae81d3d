"""One HTTP exchange per test (`responses`): every hostile QuickBooks answer becomes the right connector error.

Retries are switched off (`max_retries: 0`) so each answer is seen exactly once; the SDK's own
parsing runs for real, only the network is replaced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from connector.errors import AuthError, NotFound, ProviderError, RateLimited, Rejected, Transient
from connector.ports import ProviderSettings, TokenSet
from providers.quickbooks.client import QboClient, digits
from providers.quickbooks.oauth import FixedTokens

API = "https://qbo.invalid/v3"
DISCOVERY = "https://qbo.invalid/.well-known/openid_configuration"
REALM = "4620816365"
ANY_API_URL = re.compile(r"https://qbo\.invalid/v3/.*")
DISCOVERY_DOCUMENT = {
    "issuer": "https://qbo.invalid",
    "authorization_endpoint": "https://qbo.invalid/authorize",
    "token_endpoint": "https://qbo.invalid/token",
    "revocation_endpoint": "https://qbo.invalid/revoke",
    "jwks_uri": "https://qbo.invalid/jwks",
    "userinfo_endpoint": "https://qbo.invalid/userinfo",
}
OVERSIZED = 4 * 1024 * 1024


def _fault(code: str, message: str = "Error") -> bytes:
    body = {"Fault": {"Error": [{"Message": message, "Detail": message, "code": code}], "type": "ValidationFault"}}
    return json.dumps(body).encode()


@pytest.fixture
def client() -> Iterator[QboClient]:
    settings = ProviderSettings(
        key="quickbooks",
        client_id="client-id",
        client_secret="client-secret",
        redirect_uri="https://nudge.invalid/callback",
        environment=DISCOVERY,
        api_base=API,
        options={"max_retries": 0, "rate_per_minute": 0},
    )
    tokens = TokenSet("access-token", "refresh-token", datetime.now(UTC) + timedelta(hours=1))
    with responses.mock:  # the default mock, which the module-level `responses.add` fills
        responses.add(responses.GET, DISCOVERY, json=DISCOVERY_DOCUMENT)
        yield QboClient(REALM, FixedTokens(tokens), settings, sleep=lambda _seconds: None)


def _answer(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
    responses.add(responses.GET, ANY_API_URL, body=body, status=status, content_type=content_type, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        pytest.param(401, b'{"fault":"AuthenticationFailed"}', "application/json", AuthError, id="401"),
        pytest.param(403, _fault("3100", "ApplicationAuthorizationFailed"), "application/json", AuthError, id="403"),
        pytest.param(404, b"<html><body>Not Found</body></html>", "text/html", Transient, id="404-html"),
        pytest.param(400, _fault("610", "Object Not Found"), "application/json", NotFound, id="610-not-found"),
        pytest.param(400, _fault("2020", "Required param missing"), "application/json", Rejected, id="400-validation"),
        pytest.param(500, b'{"oops":', "application/json", Transient, id="500"),
        pytest.param(503, b"<html>Service Unavailable</html>", "text/html", Transient, id="503-html"),
        pytest.param(200, b'{"CompanyInfo": {"CompanyName": "Tru', "application/json", Transient, id="garbled-json"),
        pytest.param(200, b"<!doctype html><title>Maintenance</title>", "text/html", Transient, id="html-200"),
        pytest.param(200, b'["not", "an", "object"]', "application/json", Transient, id="wrong-shape"),
        pytest.param(200, b"x" * OVERSIZED, "application/json", Transient, id="oversized"),
    ],
)
def test_hostile_answers_become_the_right_connector_error(
    client: QboClient, status: int, body: bytes, content_type: str, expected: type[ProviderError]
) -> None:
    _answer(status, body, content_type)
    with pytest.raises(ProviderError) as info:
        client.company_info()
    assert type(info.value) is expected or isinstance(info.value, expected)
    assert info.value.provider == "quickbooks"
    assert len(info.value.user_message) < 300  # the body never leaks into the message
    assert "Maintenance" not in info.value.user_message


def test_429_carries_retry_after(client: QboClient) -> None:
    _answer(429, b'{"fault":"ThrottleExceeded"}', **{"Retry-After": "7"})
    with pytest.raises(RateLimited) as info:
        client.company_info()
    assert info.value.retry_after == 7.0


def test_429_without_retry_after_still_rate_limited(client: QboClient) -> None:
    _answer(429, b"<html>Too Many Requests</html>", "text/html")
    with pytest.raises(RateLimited) as info:
        client.company_info()
    assert info.value.retry_after >= 1.0


def test_403_throttle_fault_is_rate_limited(client: QboClient) -> None:
    _answer(403, _fault("3001", "ThrottleExceeded"))
    with pytest.raises(RateLimited):
        client.company_info()


def test_a_good_answer_is_read(client: QboClient) -> None:
    _answer(200, json.dumps({"CompanyInfo": {"CompanyName": "Trudy's", "Id": "1"}, "time": "x"}).encode())
    assert client.company_info()["CompanyName"] == "Trudy's"


_XML_THROTTLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><IntuitResponse xmlns="http://schema.intuit.com/finance/v3">'
    b'<Fault type="ValidationFault"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
    b"statusCode=403</Message></Error></Fault></IntuitResponse>"
)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(200, _fault("3001", "ThrottleExceeded"), "application/json", id="200-json"),
        pytest.param(403, _fault("003001", "ThrottleExceeded"), "application/json", id="403-json"),
        pytest.param(403, _XML_THROTTLE, "application/xml", id="403-xml"),
        pytest.param(200, _XML_THROTTLE, "application/xml", id="200-xml"),
    ],
)
def test_throttle_fault_in_any_status_or_format_is_rate_limited_with_retry_after(
    client: QboClient, status: int, body: bytes, content_type: str
) -> None:
    _answer(status, body, content_type, **{"Retry-After": "9"})
    with pytest.raises(RateLimited) as info:
        client.company_info()
    assert info.value.retry_after == 9.0


def test_a_200_fault_other_than_3001_is_not_a_rate_limit(client: QboClient) -> None:
    _answer(200, _fault("6000", "Business Validation Error"))
    with pytest.raises(Rejected):
        client.company_info()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(client: QboClient, status: int) -> None:
    _answer(status, b"", "text/plain", Location="https://evil.invalid/v3/company/1/companyinfo/1")
    responses.add(responses.GET, re.compile(r"https://evil\.invalid/.*"), json={"CompanyInfo": {}})
    with pytest.raises(Rejected, match=r"redirect to evil\.invalid"):
        client.company_info()
    assert all("evil.invalid" not in str(call.request.url) for call in responses.calls)


@pytest.mark.parametrize("ident", ["²", "١٢٣", "1 OR 1=1", "' AND Id='2", "", "-1", "1" * 21])
def test_ids_are_ascii_digits_only(ident: str) -> None:
    with pytest.raises(Rejected):
        digits(ident)
