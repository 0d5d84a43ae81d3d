"""The signed-in home: the organization's page (its overview) lists its own connections and nobody else's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.bootstrap import Services
from connector.config import Settings
from connector.domain.model import Role
from connector.ports import ProviderSettings, ProviderSpec
from connector.registry import Registry
from connector.storage import Store
from web import create_app


def _add_connection(store: Store, org_id: int, provider: str, tenant_id: str, name: str, status: str) -> None:
    with store.unit_of_work() as uow:
        uow.connections.add(org_id, provider, tenant_id, name, status=status)
        uow.commit()


def test_empty_state(client: FlaskClient, signed_in: Any) -> None:
    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert page.status_code == 200
    assert "No clients connected yet" in page.text
    assert "<table" not in page.text
    assert 'class="role">owner<' in page.text


def test_lists_this_organizations_connections_only(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
) -> None:
    other = make_user("Other Org", Role.OWNER)
    _add_connection(store, signed_in.org_id, "quickbooks", "9130355", "Acme Books", "active")
    _add_connection(store, signed_in.org_id, "xero", "t-1", "Acme NZ", "needs_reauth")
    _add_connection(store, other.org_id, "xero", "t-2", "Secret Client of Another Org", "active")

    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert page.status_code == 200
    assert "No clients connected yet" not in page.text
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 2
    assert "Acme Books" in rows
    assert "quickbooks" in rows
    assert "Not synced yet" in rows  # an active connection before its first sync
    assert "Acme NZ" in rows
    assert "xero" in rows
    assert "Reconnect needed" in rows
    assert "Secret Client of Another Org" not in page.text


def test_a_client_limited_member_sees_only_their_clients(
    app: Flask,
    store: Store,
    signed_in: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    from connector.accounts import members
    from tests.support.domain import utc

    _add_connection(store, signed_in.org_id, "quickbooks", "9130355", "Their Own Books", "active")
    _add_connection(store, signed_in.org_id, "xero", "t-1", "Another Client Entirely", "active")
    limited = make_user("Acme Ltd", Role.VIEWER)
    with store.unit_of_work() as uow:
        theirs = next(c.id for c in uow.connections.for_organization(signed_in.org_id) if c.tenant_id == "9130355")
        member = next(m.id for m in members.members_of(uow, signed_in.org_id) if m.user_id == limited.user_id)
        members.update_member(
            uow,
            organization_id=signed_in.org_id,
            member_id=member,
            acting_user_id=signed_in.user_id,
            now=utc(2026, 11, 30),
            actor=signed_in.email,
            client_limited=True,
            connection_ids=[theirs],
        )
        uow.commit()
    browser = app.test_client()
    assert login(browser, limited.email, limited.password).status_code == 302
    page = browser.get(f"/orgs/{signed_in.org_id}/")
    assert page.status_code == 200
    assert "Their Own Books" in page.text
    assert "Another Client Entirely" not in page.text


def test_first_organization_by_name_and_switching(
    client: FlaskClient,
    make_user: Callable[..., Any],
    store: Store,
    login: Callable[..., TestResponse],
) -> None:
    zulu = make_user("Zulu Traders", Role.OWNER, email="multi@example.com")
    alpha = make_user("Alpha Accounting", Role.OWNER)
    with store.unit_of_work() as uow:
        uow.memberships.add(zulu.user_id, alpha.org_id, Role.VIEWER)
        uow.commit()
    assert login(client, zulu.email, zulu.password).status_code == 302
    assert client.get("/").location == f"/orgs/{alpha.org_id}/"
    alpha_page = client.get(f"/orgs/{alpha.org_id}/")
    assert 'class="role">viewer<' in alpha_page.text
    assert f'href="/orgs/{zulu.org_id}/"' in alpha_page.text  # the switcher links the other one
    assert 'class="role">owner<' in client.get(f"/orgs/{zulu.org_id}/").text


def test_organization_names_are_escaped(
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    account = make_user("<script>alert(1)</script> & Co", Role.OWNER)
    assert login(client, account.email, account.password).status_code == 302
    page = client.get(f"/orgs/{account.org_id}/")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page.text


def _unused(*_args: object) -> NoReturn:
    raise AssertionError("the dashboard must not call the provider")


def test_the_organization_url_is_the_overview(app: Flask) -> None:
    """`home.organization` still builds the organization's URL; the overview screen answers it."""
    with app.test_request_context():
        from flask import url_for

        assert url_for("home.organization", org_id=7) == url_for("overview_page.index", org_id=7) == "/orgs/7/"
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/orgs/7/")[0] == "overview_page.index"


def test_provider_names_come_from_the_registry(
    app: Flask,
    settings: Settings,
    store: Store,
    signed_in: Any,
    login: Callable[..., TestResponse],
) -> None:
    spec = ProviderSpec(
        key="quickbooks",
        display_name="QuickBooks Online",
        authorization_url=_unused,
        exchange_code=_unused,
        refresh=_unused,
        revoke=_unused,
        connect=_unused,
        verify_webhook=_unused,
        parse_webhook=_unused,
        adapter=_unused,
    )
    provider = ProviderSettings(key="quickbooks", client_id="id", client_secret="secret", redirect_uri="http://x/cb")
    registry = Registry({"quickbooks": spec}, {"quickbooks": provider})
    services = Services(settings=settings, store=store, registry=registry)
    _add_connection(store, signed_in.org_id, "quickbooks", "1", "Books", "active")
    _add_connection(store, signed_in.org_id, "freshbooks", "2", "Unconfigured", "disconnected")

    client = create_app(settings, services).test_client()
    assert login(client, signed_in.email, signed_in.password).status_code == 302
    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert '<span class="muted small provider">QuickBooks Online</span>' in page.text
    assert '<span class="muted small provider">freshbooks</span>' in page.text
