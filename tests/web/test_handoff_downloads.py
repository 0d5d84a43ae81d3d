"""Hand-off packs on the invoice page and in the inbox, without a browser: the three download links, the files
served with safe names and no caching, and scoping (another organization's or client's pack, a client-limited
member outside their clients, an unknown file: 404 with nothing of the pack)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from flask.testing import FlaskClient

from connector.storage.tables import HandoffPack, Invoice
from tests.web import test_customer_pages as pages
from web.extensions import SERVICES_KEY

Shop = pages.Shop
shop = pages.shop
browser = pages.browser

SECRET = b"PK-evidence-of-acme"


def _pack(client: FlaskClient, shop: Shop) -> int:
    store = client.application.extensions[SERVICES_KEY].store
    with store.unit_of_work() as uow:
        invoice = uow.session.get(Invoice, shop.invoice_id)
        assert invoice is not None
        row = HandoffPack(
            pack_key="k" * 40,
            organization_id=shop.org_id,
            connection_id=shop.connection_id,
            action_key="a" * 40,
            customer_external_id=invoice.customer_external_id,
            customer_name="Acme Ltd",
            invoice_external_ids=[invoice.external_id],
            invoice_numbers=[invoice.number],
            kind="pre_action",
            letter_date=date(2026, 11, 16),
            totals={"GBP": {"claimed": "549.86"}},
            letter_pdf=b"%PDF-1.7 letter",
            evidence_zip=SECRET,
            placement_csv=b"debtor_name\r\nAcme Ltd\r\n",
            missing_pdfs=[],
            created_at=datetime(2026, 11, 16, 9, tzinfo=UTC),
        )
        uow.session.add(row)
        uow.commit()
        return row.id


def _url(shop: Shop, pack_id: int, part: str, *, org: int | None = None, client: int | None = None) -> str:
    return f"/orgs/{org or shop.org_id}/clients/{client or shop.connection_id}/handoff/{pack_id}/{part}"


def test_the_invoice_page_and_the_inbox_link_the_pack_files(browser: Callable[[str], FlaskClient], shop: Shop) -> None:
    owner = browser("owner")
    pack_id = _pack(owner, shop)
    page = owner.get(f"/orgs/{shop.org_id}/clients/{shop.connection_id}/invoices/{shop.invoice_id}").text
    assert 'id="handed-off"' in page
    assert "Letter before claim" in page
    assert "£549.86" in page
    for part in ("letter.pdf", "evidence.zip", "placement.csv"):
        assert f'href="{_url(shop, pack_id, part)}"' in page
    other = owner.get(f"/orgs/{shop.org_id}/clients/{shop.connection_id}/invoices/{shop.invoice2_id}").text
    assert 'id="handed-off"' not in other  # the pack covers INV-1 only
    inbox = browser("viewer").get(f"/orgs/{shop.org_id}/inbox").text
    assert 'data-testid="group-handed-off"' in inbox
    assert f'href="{_url(shop, pack_id, "evidence.zip")}"' in inbox


def test_the_files_download_with_safe_names(browser: Callable[[str], FlaskClient], shop: Shop) -> None:
    viewer = browser("viewer")
    pack_id = _pack(viewer, shop)
    answer = viewer.get(_url(shop, pack_id, "evidence.zip"))
    assert answer.status_code == 200
    assert answer.data == SECRET
    assert answer.mimetype == "application/zip"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="handoff-{pack_id}-evidence-2026-11-16.zip"'
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert viewer.get(_url(shop, pack_id, "placement.csv")).mimetype == "text/csv"
    assert viewer.get(_url(shop, pack_id, "letter.pdf")).data.startswith(b"%PDF")


def test_a_pack_is_404_outside_its_organization_and_client(browser: Callable[[str], FlaskClient], shop: Shop) -> None:
    owner = browser("owner")
    pack_id = _pack(owner, shop)
    refused = [
        (browser("beta"), _url(shop, pack_id, "evidence.zip")),
        (browser("beta"), _url(shop, pack_id, "evidence.zip", org=shop.beta_org_id, client=shop.beta_connection_id)),
        (owner, _url(shop, pack_id, "evidence.zip", client=shop.second_connection_id)),
        (browser("limited"), _url(shop, pack_id, "evidence.zip")),
        (owner, _url(shop, pack_id, "../letter.pdf")),
        (owner, _url(shop, pack_id, "letter_pdf")),
    ]
    for client, url in refused:
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert SECRET not in answer.data
    assert "handed-off" not in browser("limited").get(f"/orgs/{shop.org_id}/inbox").text
