"""The settings screens in a real browser on the demo's data, at 1440 and 390 px, axe clean: the organization's
defaults and its clients, then a client's settings: change the sender customers see, and a wrong Reply-To
named in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.storage.tables import ClientSettings
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

THAMES = 2


def submit(page: Any, button: Any) -> None:
    """Press a button that posts a form and wait for the page it leads to (stylesheets loaded)."""
    with page.expect_navigation(wait_until="load"):
        button.click()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_settings_change_a_clients_sender(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    page = browse(width)
    page.goto("/orgs/1/settings")
    expect(page.get_by_role("heading", name="Organization defaults")).to_be_visible()
    expect(page.get_by_label("Default cadence")).to_be_visible()
    check(page, "settings")

    page.get_by_role("link", name="Settings of Thames Joinery Ltd").click()
    expect(page.get_by_role("heading", name="Thames Joinery Ltd: settings")).to_be_visible()
    expect(page.get_by_text("Empty: Thames Joinery Ltd (from the ledger)").first).to_be_visible()
    check(page, "settings-client")

    page.get_by_label("From name").fill("Thames Joinery Accounts")
    page.get_by_label("Reply-To address").fill("not an address")
    submit(page, page.get_by_role("button", name="Save settings"))
    expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved")
    expect(page.get_by_label("Reply-To address")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("From name")).to_have_value("Thames Joinery Accounts")  # kept as typed
    check(page, "settings-client-error")

    page.get_by_label("Reply-To address").fill("accounts@thames-joinery.example")
    submit(page, page.get_by_role("button", name="Save settings"))
    expect(
        page.get_by_role("status").filter(has_text="Saved Thames Joinery Ltd: From name and Reply-To changed.")
    ).to_be_visible()
    expect(page.get_by_label("From name")).to_have_value("Thames Joinery Accounts")
    with world.services.store.unit_of_work() as uow:
        row = uow.session.get(ClientSettings, THAMES)
        assert row is not None
        assert (row.from_name, row.reply_to) == ("Thames Joinery Accounts", "accounts@thames-joinery.example")
