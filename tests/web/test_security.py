"""Security headers, cookie flags, fail-closed start-up, and templates the CSP can live with."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import web
from connector.config import Settings
from connector.errors import ConfigError
from web import create_app
from web.security import CONTENT_SECURITY_POLICY, PERMISSIONS_POLICY

EXPECTED = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": PERMISSIONS_POLICY,
}


def _assert_headers(response: Any) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.request.path)


def test_security_headers_on_every_kind_of_response(client: FlaskClient, signed_in: Any) -> None:
    responses = {
        "page": client.get(f"/orgs/{signed_in.org_id}/"),
        "redirect": client.get("/"),
        "json": client.get("/healthz"),
        "not found": client.get("/no/such/page"),
        "foreign org": client.get("/orgs/424242/"),
        "method not allowed": client.get("/logout"),
        "csrf failure": client.post("/logout"),
        "static": client.get("/static/nudge.css"),
    }
    try:
        for kind, response in responses.items():
            assert response.status_code in {200, 302, 400, 404, 405}, kind
            _assert_headers(response)
        assert responses["page"].headers["Cache-Control"] == "no-cache, no-store"
        assert set(responses["method not allowed"].headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
        assert responses["static"].mimetype == "text/css"
        assert "no-store" not in responses["static"].headers.get("Cache-Control", "")
        assert EXPECTED["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    finally:
        for response in responses.values():
            response.close()  # the static file is streamed from an open file until the response is closed


def test_hsts_only_over_https(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://nudge.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def _session_cookie(response: Any) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("nudge_session=")]
    assert cookies, "no session cookie was set"
    return str(cookies[-1])


def test_session_cookie_is_httponly_samesite_lax_and_secure_when_configured(
    settings: Settings,
    app: Any,
    tmp_path: Path,
) -> None:
    plain = _session_cookie(app.test_client().get("/login"))  # tests run over http: Secure off
    assert "HttpOnly" in plain
    assert "SameSite=Lax" in plain
    assert "Secure" not in plain

    production = dataclasses.replace(settings, web=dataclasses.replace(settings.web, session_cookie_secure=True))
    secure_app = create_app(production, app.extensions["nudge.services"])
    cookie = _session_cookie(secure_app.test_client().get("/login", base_url="https://nudge.example"))
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_start_up_fails_closed_without_a_secret_key(settings: Settings) -> None:
    keyless = dataclasses.replace(settings, web=dataclasses.replace(settings.web, secret_key=""))
    with pytest.raises(ConfigError, match="secret_key"):
        create_app(keyless)


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    """The CSP forbids inline code; the templates must not depend on it (the browser test checks too)."""
    templates = sorted((Path(web.__file__).parent / "templates").glob("**/*.html"))
    assert len(templates) >= 4
    for template in templates:
        # A script loaded from this site's static files is allowed (the API docs page's Swagger UI); inline is not.
        text = re.sub(
            r"<script src=\"\{\{ url_for\('static', filename='[^']+'\) \}\}\"( defer)?></script>",
            "",
            template.read_text(encoding="utf-8"),
        )
        assert not re.search(r"<script|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:", text, re.I), template.name
        assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", text), f"{template.name} loads from another host"


def test_no_secret_reaches_a_page(client: FlaskClient, settings: Settings, signed_in: Any) -> None:
    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert settings.web.secret_key not in page.text
    assert all(key not in page.text for key in settings.vault.keys.values() if key)
    assert signed_in.password not in page.text


def test_permissions_policy_denies_every_powerful_feature() -> None:
    assert "camera=()" in PERMISSIONS_POLICY
    assert "geolocation=()" in PERMISSIONS_POLICY
    assert "microphone=()" in PERMISSIONS_POLICY
    assert "payment=()" in PERMISSIONS_POLICY


def test_production_redirects_plain_http_to_https(settings: Settings, app: Any) -> None:
    production = dataclasses.replace(settings, web=dataclasses.replace(settings.web, base_url="https://nudge.example"))
    client = create_app(production, app.extensions["nudge.services"]).test_client()
    plain = client.post("/login?next=/x", base_url="http://nudge.example")
    assert plain.status_code == 308
    assert plain.location == "https://nudge.example/login?next=/x"
    secure = client.get("/login", base_url="https://nudge.example")
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert client.open("/login", method="TRACE", base_url="https://nudge.example").status_code == 405
