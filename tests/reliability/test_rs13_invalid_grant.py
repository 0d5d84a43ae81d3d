"""RS-13: the token endpoint answers invalid_grant (the user disconnected the app at the provider)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.vault.tokens import open_tokens
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import customer_email
from web import create_app

RULES = rules([{"id": "late", "offset": 3, "remind": "firm"}])
PASSWORD = "correct horse battery staple"


def _tenant(world: Pipeline, name: str) -> int:
    kit = world.kit
    tenant = kit.add_company(name)
    customer = kit.add_customer(tenant, f"{name} Payer", customer_email(f"{name} Payer"))
    today = world.clock.now().date()
    due = today - timedelta(days=10)
    kit.add_invoice(tenant, customer, f"{name[:2]}-1", Decimal("80.00"), "", due - timedelta(days=50), due)
    return world.connect(tenant)


def _revoke_at_the_provider(world: Pipeline, connection_id: int) -> None:
    """The user disconnects Nudge in the ledger: the stored refresh token dies (invalid_grant from now on)."""
    services = world.services
    with services.store.unit_of_work() as uow:
        row = uow.connections.by_id(connection_id)
        assert row is not None
        tokens = open_tokens(services.vault, row)
        provider = row.provider
    if provider == "xero":
        # Xero's revoke ends every organisation the user connected (one emulator user here): kill just this
        # connection's refresh token, as Xero does when the user disconnects this organisation alone.
        state = world.kit.emulator.state  # type: ignore[attr-defined]
        with state.lock:
            state.refresh_tokens[tokens.refresh_token].revoked = True
        return
    services.registry.spec(provider).revoke(services.registry.settings(provider), tokens)


def _org_page(world: Pipeline, connection_id: int) -> str:
    """The organization page as its owner sees it in the web app."""
    services = world.services
    with services.store.unit_of_work() as uow:
        row = uow.connections.by_id(connection_id)
        assert row is not None
        org_id = row.organization_id
        user = create_user(uow, "owner@rs13.example", PASSWORD)
        uow.memberships.add(user.id, org_id, Role.OWNER)
        uow.commit()
    app = create_app(services=services)
    client = app.test_client()
    login = client.get("/login")
    token = re.search(r'name="csrf_token"[^>]*\bvalue="([^"]+)"', login.text)
    assert token is not None
    form = {"csrf_token": token.group(1), "email": "owner@rs13.example", "password": PASSWORD}
    signed_in = client.post("/login", data=form)
    assert signed_in.status_code == 302, signed_in.text
    page = client.get(f"/orgs/{org_id}/")
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    return page.text


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs13_invalid_grant_parks_one_tenant_with_no_more_token_calls(provider: str, tmp_path: Path) -> None:
    """Expected: status becomes "disconnected" (needs_reauth); that tenant's jobs pause, no further token calls.

    Other tenants are unaffected and the UI shows Reconnect. The design's name for the state is
    `needs_reauth` (docs/design.md "Data": active | needs_reauth | disconnected; `disconnected` is what
    the user's own Disconnect leaves), shown as "Reconnect needed" with a Reconnect button.
    """
    start = datetime.now(UTC)
    with pipeline(provider, tmp_path, RULES, start=start) as world:
        revoked = _tenant(world, "Revoked Co")
        healthy = _tenant(world, "Healthy Co")
        _revoke_at_the_provider(world, revoked)
        worker = world.worker()
        world.clock.advance(timedelta(hours=2))  # both access tokens have expired: each needs a refresh
        before = world.kit.token_calls()

        first = worker.tick()

        assert sorted(first.claimed) == sorted([revoked, healthy])
        assert first.succeeded == [healthy], first.failed
        assert "reconnect" in first.failed[revoked].lower(), first.failed
        assert world.kit.token_calls() - before == 2  # one refresh each; the revoked one got invalid_grant
        with world.services.store.unit_of_work() as uow:
            parked = uow.connections.by_id(revoked)
            assert parked is not None
            assert parked.status == "needs_reauth"
            assert parked.last_error
            other = uow.connections.by_id(healthy)
            assert other is not None
            assert other.status == "active"
        assert len(world.activities("connection.needs_reauth")) == 1

        calls = world.kit.token_calls()
        data = world.kit.data_calls()
        for _ in range(3):  # days pass; the healthy tenant keeps syncing, the parked one is never claimed
            world.clock.advance(timedelta(hours=3))
            tick = worker.tick()
            assert revoked not in tick.claimed
            assert tick.succeeded == [healthy]
        assert world.kit.token_calls() - calls == 3  # the healthy tenant's refreshes only
        assert world.kit.data_calls() > data
        assert [row.state for row in world.actions(revoked)] == []  # nothing planned for a parked tenant
        assert {row.state for row in world.actions(healthy)} == {"done"}

        page = _org_page(world, revoked)
        assert "Reconnect needed" in page
        assert ">Reconnect</button>" in page
        assert f"/connections/{revoked}/reconnect" in page
