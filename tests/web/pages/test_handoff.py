"""The demo's handed-off customer in a real browser (issue 17): the invoice page's "Handed off" section and the
inbox's "Handed off" group, each with the pack's three downloads; the evidence ZIP downloads and opens (axe clean,
screenshots at 1440 and 390 px)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from connector.storage.tables import Connection, HandoffPack, Invoice
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]


def _handed_off(world: World) -> tuple[int, int, int, str]:
    """(org id, client id, an invoice's row id, its number) of the demo's hand-off pack."""
    with world.services.store.unit_of_work() as uow:
        pack = uow.session.scalars(select(HandoffPack).order_by(HandoffPack.id)).first()
        assert pack is not None, "the demo handed no customer off"
        connection = uow.session.get(Connection, pack.connection_id)
        assert connection is not None
        invoice = uow.session.scalar(
            select(Invoice).where(
                Invoice.connection_id == pack.connection_id, Invoice.external_id == pack.invoice_external_ids[0]
            )
        )
        assert invoice is not None
        return connection.organization_id, connection.id, invoice.id, invoice.number


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_hand_off_pack_is_on_the_invoice_page_and_in_the_inbox(
    browse: Callable[..., Any], check: Callable[[Any, str], None], world: World, width: str
) -> None:
    org_id, connection_id, invoice_id, number = _handed_off(world)
    page = browse(width)
    page.goto(f"/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}")
    section = page.locator("section[aria-labelledby=handed-off]")
    expect(section.get_by_role("heading", name="Handed off")).to_be_visible()
    expect(section).to_contain_text("Letter before claim")
    expect(section).to_contain_text(number)
    check(page, "invoice-handed-off")
    with page.expect_download() as download:
        section.get_by_role("link", name="Evidence (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    assert {"summary.pdf", "letter.pdf", "placement.csv"} <= set(archive.namelist())

    page.goto(f"/orgs/{org_id}/inbox")
    group = page.get_by_test_id("group-handed-off")
    expect(group).to_contain_text("Letter before claim")
    expect(group.get_by_role("link", name="Agency placement (CSV)")).to_be_visible()
    check(page, "inbox-handed-off")
