"""The cadences screen in a browser on the demo's data: the library, a cadence's editor with its live preview on a
client and the impact across clients before saving, saving a new version, steps added and removed, a new cadence
copied and deleted, and a policy's editor with a refusal next to its field; at 1440 and 390 px, axe clean."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.library import items
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, PAYMENT_PLAN
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

ORG = 1


def _item(world: World, kind: str, name: str) -> items.ItemView:
    with world.services.store.unit_of_work() as uow:
        return next(item for item in items.list_items(uow, ORG, kind) if item.name == name)


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_library_the_cadence_editor_and_a_policy_at_both_widths(
    browse: Callable[..., Any], check: Callable[[Any, str], None], world: World, width: str
) -> None:
    page = browse(width)
    page.goto(f"/orgs/{ORG}/cadences")
    expect(page.get_by_role("heading", name="Cadences", exact=True).first).to_be_visible()
    cadences = page.get_by_test_id("cadences")
    expect(cadences.get_by_role("link", name="standard")).to_be_visible()
    expect(cadences).to_contain_text("Hudson Valley Design Co., Thames Joinery Ltd")
    expect(page.get_by_test_id("late_fees")).to_contain_text("Interest at 1.5 % a month")
    check(page, "cadences")

    cadences.get_by_role("link", name="standard").click()
    expect(page.get_by_role("heading", name="standard")).to_be_visible()
    expect(page.get_by_test_id("step")).to_have_count(6)
    page.get_by_test_id("step").nth(2).locator("summary").click()  # a step's fields, as someone editing it sees them
    expect(page.get_by_test_id("step").nth(2).get_by_label("Days from the due date")).to_have_value("3")
    check(page, "cadence-editor")

    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_test_id("preview")).to_contain_text("Hudson Valley Design Co. follows this cadence")
    page.get_by_role("button", name="Show the impact").click()
    expect(page.get_by_test_id("impact")).to_contain_text("no change at Hudson Valley Design Co.")
    check(page, "cadence-editor-preview")

    page.goto(f"/orgs/{ORG}/cadences/policies/{_item(world, LATE_FEE, 'monthly_interest').id}")
    expect(page.get_by_role("heading", name="monthly_interest")).to_be_visible()
    expect(page.get_by_label("Or a monthly interest rate, %")).to_have_value("1.5")
    check(page, "late-fee-policy")

    page.goto(f"/orgs/{ORG}/cadences/policies/{_item(world, DISCOUNT, 'early').id}")
    expect(page.get_by_label("Discount, % of the invoice total")).to_have_value("2")
    check(page, "discount-policy")
    page.goto(f"/orgs/{ORG}/cadences/policies/{_item(world, PAYMENT_PLAN, 'monthly').id}")
    expect(page.get_by_label("Grace days for an installment")).to_have_value("5")
    check(page, "payment-plan-policy")


def test_edit_a_step_preview_it_on_a_client_see_the_impact_and_save(browse: Callable[..., Any], world: World) -> None:
    standard = _item(world, CADENCE, "standard")
    page = browse("desktop")
    page.goto(f"/orgs/{ORG}/cadences/{standard.id}")

    step = page.get_by_test_id("step").nth(2)
    step.locator("summary").click()
    offset = step.get_by_label("Days from the due date")
    expect(offset).to_have_value("3")
    offset.fill("5")
    step.get_by_label("Note written on the invoice in the ledger").fill("Second reminder sent by Nudge")

    # The live preview follows the form: choosing a client runs it on that client.
    page.get_by_label("Client", exact=True).select_option(label="Thames Joinery Ltd")
    preview = page.get_by_test_id("preview")
    expect(preview).to_contain_text("Thames Joinery Ltd follows this cadence")
    expect(preview).to_contain_text("Over the next 30 days")
    expect(preview).to_contain_text("Second reminder sent by Nudge")
    expect(preview.locator("details").first).to_have_attribute("open", "")

    page.get_by_role("button", name="Show the impact").click()
    impact = page.get_by_test_id("impact")
    expect(impact).to_contain_text("Over the next 14 days")
    expect(impact).to_contain_text(re.compile(r"\+\d+ reminders?, \u2212\d+ reminders?.* at Hudson Valley Design Co\."))
    expect(impact).to_contain_text("Thames Joinery Ltd")

    page.get_by_role("button", name="Save as version 2").first.click()
    expect(page.get_by_text("Saved “standard” as version 2. It applies from the next plan.")).to_be_visible()
    saved = _item(world, CADENCE, "standard")
    assert saved.version == 2
    assert saved.body["steps"][2]["offset"] == 5
    assert saved.body["steps"][2]["note"] == "Second reminder sent by Nudge"
    expect(page.get_by_test_id("step").nth(2)).to_contain_text("5 days after the due date")

    # Add a step (htmx, nothing saved), then remove it again.
    page.get_by_role("button", name="Add a step").click()
    expect(page.get_by_test_id("step")).to_have_count(7)
    expect(page.get_by_test_id("step").nth(6)).to_have_attribute("open", "")
    page.get_by_role("button", name="Remove step 7").click()
    expect(page.get_by_test_id("step")).to_have_count(6)
    assert _item(world, CADENCE, "standard").version == 2


def test_a_refused_offset_is_shown_at_its_step_and_nothing_is_saved(browse: Callable[..., Any], world: World) -> None:
    standard = _item(world, CADENCE, "standard")
    page = browse("phone")
    page.goto(f"/orgs/{ORG}/cadences/{standard.id}")
    step = page.get_by_test_id("step").first
    step.locator("summary").click()
    step.get_by_label("Days from the due date").fill("-900")
    page.get_by_role("button", name="Save as version 2").first.click()
    expect(page.get_by_test_id("refused")).to_contain_text("Not saved: one problem")
    refused = page.get_by_test_id("step").first
    expect(refused).to_have_attribute("open", "")
    expect(refused).to_contain_text("-900 calendar days is beyond a year (at most 366)")
    expect(refused.get_by_label("Days from the due date")).to_have_value("-900")
    assert _item(world, CADENCE, "standard").version == 1


def test_a_new_cadence_copied_renamed_and_deleted(browse: Callable[..., Any], world: World) -> None:
    page = browse("desktop")
    page.goto(f"/orgs/{ORG}/cadences")
    page.get_by_text("New cadence", exact=True).click()
    page.get_by_label("Name of the new cadence").fill("strict")
    page.get_by_label("Start from a copy of").select_option(label="standard")
    page.get_by_role("button", name="Create the cadence").click()
    expect(page.get_by_role("heading", name="strict")).to_be_visible()
    expect(page.get_by_test_id("step")).to_have_count(6)
    expect(page.get_by_text("No client follows it yet")).to_be_visible()

    page.get_by_label("New name").fill("stricter")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_text("Renamed “strict” to “stricter”.")).to_be_visible()

    page.get_by_role("button", name="Delete this cadence").click()  # the confirmation is accepted
    expect(page.get_by_text("Deleted the cadence “stricter”.")).to_be_visible()
    expect(page.get_by_test_id("cadences").get_by_role("link", name="stricter")).to_have_count(0)

    page.get_by_test_id("cadences").get_by_role("link", name="standard").click()
    page.get_by_role("button", name="Delete this cadence").click()
    expect(page.get_by_role("alert")).to_contain_text("Not deleted: the cadence “standard” is in use")
    expect(page.get_by_role("alert")).to_contain_text("Hudson Valley Design Co.")


def test_a_policy_is_saved_and_a_bad_number_refused_at_its_field(browse: Callable[..., Any], world: World) -> None:
    fee = _item(world, LATE_FEE, "monthly_interest")
    page = browse("desktop")
    page.goto(f"/orgs/{ORG}/cadences/policies/{fee.id}")
    page.get_by_label("Grace days after the due date").fill("-3")
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.get_by_test_id("refused")).to_be_visible()
    expect(page.locator("#grace_days-error")).to_contain_text("Must be between 0 and 366, got -3")

    page.get_by_label("Grace days after the due date").fill("10")
    page.get_by_role("button", name="Show the impact").click()
    expect(page.get_by_test_id("impact")).to_contain_text("Over the next 14 days")
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.get_by_text("Saved “monthly_interest” as version 2.")).to_be_visible()
    assert _item(world, LATE_FEE, "monthly_interest").body["grace_days"] == 10
