"""RS-31 — CSRF and cookie/header hardening, over every route of the URL map.

The real parts: the Flask app on SQLite with both providers' files connected through the real OAuth round
trip (QuickBooks and Xero emulators over HTTP), in development mode and in production mode (an https
`web.base_url`, Secure cookies). Expected (catalogue): POSTs without or with a wrong CSRF token get 400;
GET never mutates; the session cookie is Secure, HttpOnly, SameSite=Lax; authenticated pages send
`Cache-Control: no-cache, no-store`; in production HTTP redirects to HTTPS with HSTS and TRACE gives 405;
`?next=https://evil.example` is refused.

The webhook route is the one POST without a CSRF token by design: providers cannot hold one; it is
authenticated by the HMAC signature instead (RS-32).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from tests.web.harness import PASSWORD, Account, WebWorld, csrf_token, rule_url, web_world

HTTPS = "https://localhost"
CSRF_EXEMPT = {
    "webhooks.receive",  # signed by the provider instead (RS-32)
    # Inbound mail: Postmark's Basic credentials / Mailgun's HMAC signature instead (tests/web/test_inbound_webhooks.py)
    "inbound.postmark",
    "inbound.mailgun",
}


@dataclass
class Site:
    """A world with an owner whose organization has a QuickBooks and a Xero connection."""

    world: WebWorld
    owner: Account
    connections: dict[str, int]  # provider -> connection id
    tenants: dict[str, str]


def _site(world: WebWorld) -> Site:
    owner = world.user("Hardening Practice")
    connections: dict[str, int] = {}
    tenants: dict[str, str] = {}
    for provider in ("quickbooks", "xero"):
        browser = world.client(owner)
        tenants[provider] = world.kits[provider].add_company(f"Hardened {provider}")
        params = world.consent(browser, owner.org_id, provider, tenants[provider])
        assert world.callback(browser, provider, params).status_code == 303
        [row] = [row for row in world.connections(owner.org_id) if row.provider == provider]
        connections[provider] = row.id
    return Site(world, owner, connections, tenants)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with web_world(tmp_path) as world:
        yield _site(world)


def _urls(site: Site, rule: Rule) -> list[str]:
    """The rule's URLs for the owner's organization, once per provider (with that provider's connection)."""
    app = site.world.app
    urls = [
        rule_url(app, rule, site.owner.org_id, other_id=site.connections[provider], text=provider)
        for provider in ("quickbooks", "xero")
    ]
    if rule.endpoint == "connections.marketplace_disconnected":
        urls = [f"{url}?realmId={site.tenants[url.split('/')[2]]}" for url in urls]
    return sorted(set(urls))


def _rules(site: Site, method: str) -> list[Rule]:
    return [
        rule
        for rule in site.world.app.url_map.iter_rules()
        if method in (rule.methods or ()) and rule.endpoint != "static"
    ]


def test_rs31_posts_without_or_with_a_wrong_csrf_token_are_400(site: Site) -> None:
    """POSTs without or with the wrong CSRF token get 400 (and change nothing)."""
    world = site.world
    browser = world.client(site.owner)
    anonymous = world.app.test_client()
    before = world.snapshot()
    failures: list[str] = []
    rules = [rule for rule in _rules(site, "POST") if rule.endpoint not in CSRF_EXEMPT]
    assert any(rule.endpoint == "connections.disconnect_connection" for rule in rules)
    for rule in rules:
        for url in _urls(site, rule):
            for who, client in (("owner", browser), ("anonymous", anonymous)):
                for label, data in (("no token", {}), ("wrong token", {"csrf_token": "forged." + "A" * 40})):
                    status = client.post(url, data=data).status_code
                    # Signed out, an organization's route sends to sign in first (nothing done either); the JSON
                    # API answers 401 instead of sending anyone to a form.
                    expected = {400}
                    if who == "anonymous" and "org_id" in rule.arguments:
                        expected = {401} if rule.rule.startswith("/api/") else {302}
                    if status not in expected:
                        failures.append(f"POST {url} as {who}, {label}: {status}")
    assert failures == []
    assert world.snapshot() == before


def _gets(site: Site, client: FlaskClient) -> list[tuple[str, TestResponse]]:
    return [(url, client.get(url)) for rule in _rules(site, "GET") for url in _urls(site, rule)]


def test_rs31_no_get_mutates(site: Site) -> None:
    """GET never mutates: every GET route, signed in as the owner and signed out, leaves every row as it was."""
    world = site.world
    clients = (world.client(site.owner), world.app.test_client())  # signing in (a POST) writes its session row
    before = world.snapshot()
    for client in clients:
        answers = _gets(site, client)
        assert len(answers) >= 10
        assert [url for url, answer in answers if answer.status_code >= 500] == []
        changed = [name for name, rows in world.snapshot().items() if rows != before[name]]
        assert changed == [], f"a GET changed {changed}"


def test_rs31_authenticated_pages_are_not_cached(site: Site) -> None:
    """Authenticated pages send `Cache-Control: no-cache, no-store`."""
    answers = _gets(site, site.world.client(site.owner))
    missing = [
        url
        for url, answer in answers
        if not {"no-cache", "no-store"} <= {part.strip() for part in answer.headers.get("Cache-Control", "").split(",")}
    ]
    assert missing == []


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "http://localhost.evil.example/",
    ],
)
def test_rs31_next_to_another_site_is_refused(site: Site, target: str) -> None:
    """`?next=https://evil.example` is refused: the sign-in lands on Nudge's own home page."""
    client = site.world.app.test_client()
    page = client.get("/login", query_string={"next": target})
    answer = client.post(
        "/login",
        query_string={"next": target},
        data={"csrf_token": csrf_token(page.text), "email": site.owner.email, "password": PASSWORD},
    )
    assert answer.status_code == 302
    assert answer.location == "/"
    assert "evil" not in page.text
    assert client.get("/login", query_string={"next": target}).location == "/"  # signed in already: home


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Site]:
    with web_world(tmp_path, production=True) as world:
        yield _site(world)


def _https_login(site: Site) -> tuple[FlaskClient, TestResponse]:
    client = site.world.app.test_client()
    page = client.get("/login", base_url=HTTPS)
    answer = client.post(
        "/login",
        base_url=HTTPS,
        headers={"Referer": f"{HTTPS}/login"},  # browsers send it (Referrer-Policy: same-origin); CSRF checks it
        data={"csrf_token": csrf_token(page.text), "email": site.owner.email, "password": PASSWORD},
    )
    assert answer.status_code == 302, answer.text
    return client, answer


def test_rs31_session_cookie_is_secure_httponly_samesite_lax(production: Site) -> None:
    """The session cookie is `Secure; HttpOnly; SameSite=Lax`."""
    _client, answer = _https_login(production)
    cookies = [value for name, value in answer.headers.items() if name.lower() == "set-cookie"]
    session = [cookie for cookie in cookies if cookie.startswith("nudge_session=")]
    assert session, cookies
    for cookie in session:
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=lax"} <= flags, cookie


def test_rs31_production_redirects_http_to_https_with_hsts_and_refuses_trace(production: Site) -> None:
    """In production mode HTTP redirects to HTTPS with HSTS, and TRACE gives 405."""
    client, _answer = _https_login(production)
    org = production.owner.org_id
    plain = client.get(f"/orgs/{org}/", base_url="http://localhost")
    assert plain.status_code in (301, 308)
    assert plain.location == f"https://localhost/orgs/{org}/"
    assert "Strict-Transport-Security" not in plain.headers  # HSTS is only meaningful over https
    secure = client.get(f"/orgs/{org}/", base_url=HTTPS)
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(secure.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31536000
    for path in ("/", f"/orgs/{org}/", "/login", "/healthz"):
        assert client.open(path, method="TRACE", base_url=HTTPS).status_code == 405, path
