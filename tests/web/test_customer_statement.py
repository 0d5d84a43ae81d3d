"""The customer page's Statement section without a browser: the PDF download (type, a safe file name, what it
says, read back with pdftotext), the email request (CSRF, one outbox action however often the form is sent, a
clear word when nothing is open), roles (viewers download but never email) and scoping (404 elsewhere)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Customer
from tests.support import clients
from tests.support.pdf import pdf_text, words
from tests.web import test_customer_pages as pages
from tests.web.conftest import csrf_token
from web.extensions import SERVICES_KEY

Shop = pages.Shop
shop = pages.shop  # the fixtures of the customer page's tests
browser = pages.browser


def _request_id(page: str) -> str:
    found = re.search(r'name="request" value="([0-9a-f]{32})"', page)
    assert found, "no statement request id on the page"
    return found.group(1)


def _actions(client: FlaskClient) -> list[ActionRow]:
    store = client.application.extensions[SERVICES_KEY].store
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(ActionRow)))
        for row in rows:
            uow.session.expunge(row)
        return rows


def _flash(client: FlaskClient, location: str, tone: str) -> str:
    landed = client.get(location)
    found = re.search(rf'<p class="flash flash-{tone}"[^>]*>(.*?)</p>', landed.text, re.S)
    assert found, f"no {tone} message"
    return html.unescape(found.group(1))


def test_the_statement_downloads_as_a_pdf_with_a_safe_name(browser: Callable[[str], FlaskClient], shop: Shop) -> None:
    owner = browser("owner")
    page = owner.get(shop.base).text
    assert 'id="statement"' in page
    assert f'href="{shop.base}/statement.pdf"' in page
    response = owner.get(f"{shop.base}/statement.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="statement-Acme-Ltd-2026-11-16.pdf"'
    assert response.headers["Cache-Control"] == "private, no-store"
    text = words(pdf_text(response.data))
    assert "Statement of account" in text
    assert "Acme Ltd" in text
    assert "GBP: £620.50 outstanding" in text  # INV-1 500.00 (14 days late) + INV-2 120.50 (not due)
    assert "£120.50 £500.00 £0.00 £0.00 £0.00 £620.50" in text  # current, 1-30, ..., total


def test_a_hostile_customer_name_never_reaches_the_header_or_breaks_the_pdf(
    browser: Callable[[str], FlaskClient], shop: Shop
) -> None:
    store = browser("owner").application.extensions[SERVICES_KEY].store
    with store.unit_of_work() as uow:
        row = uow.session.get(Customer, shop.customer_id)
        assert row is not None
        row.name = 'Evil"\r\nSet-Cookie: x=1; <script>alert(1)</script> שלום 😀 ' + "Long" * 80
        uow.commit()
    response = browser("owner").get(f"{shop.base}/statement.pdf")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="statement-[A-Za-z0-9-]+-2026-11-16\.pdf"', disposition)
    assert "Set-Cookie" not in response.headers
    assert "<script>alert(1)</script>" in "".join(pdf_text(response.data).split())


def test_emailing_the_statement_plans_one_outbox_action_per_form(
    browser: Callable[[str], FlaskClient], shop: Shop
) -> None:
    owner = browser("owner")
    page = owner.get(shop.base).text
    token, request_id = csrf_token(page), _request_id(page)
    url = f"{shop.base}/statement"
    assert owner.post(url, data={"request": request_id}).status_code == 400  # no CSRF token: refused
    first = owner.post(url, data={"csrf_token": token, "request": request_id})
    assert first.status_code == 302
    assert "goes out with the next worker turn" in _flash(owner, first.headers["Location"], "success")
    again = owner.post(url, data={"csrf_token": token, "request": request_id})  # a double click, a resend
    assert "already asked for" in _flash(owner, again.headers["Location"], "info")
    [action] = _actions(owner)
    assert (action.kind, action.state, action.step, action.customer_external_id) == (
        "remind",
        "planned",
        "statement",
        "c1",
    )
    assert [item["statement"] for item in action.payload["items"]] == [True, True]
    assert owner.get(shop.base).text.count(request_id) == 0  # every page load makes a new request id


def test_a_statement_is_not_emailed_when_nothing_is_open_or_the_request_is_forged(
    browser: Callable[[str], FlaskClient], shop: Shop
) -> None:
    owner = browser("owner")
    token = csrf_token(owner.get(shop.base).text)
    for forged in ("", "<script>", "1" * 1000, "ab" * 16 + "\n"):
        response = owner.post(f"{shop.base}/statement", data={"csrf_token": token, "request": forged})
        assert response.status_code == 302
        assert "reload the page" in _flash(owner, response.headers["Location"], "error")
    store = owner.application.extensions[SERVICES_KEY].store
    idle = clients.customer(store, shop.connection_id, "c7", "Paid Up Ltd")
    idle_url = f"/orgs/{shop.org_id}/clients/{shop.connection_id}/customers/{idle}"
    page = owner.get(idle_url).text
    assert "Email statement" not in page  # nothing open: only the download
    response = owner.post(f"{idle_url}/statement", data={"csrf_token": token, "request": "ab" * 16})
    assert "owes nothing" in _flash(owner, response.headers["Location"], "error")
    assert _actions(owner) == []
    assert owner.get(f"{idle_url}/statement.pdf").status_code == 200


def test_viewers_download_but_never_email_and_other_clients_are_404(
    browser: Callable[[str], FlaskClient], shop: Shop
) -> None:
    viewer = browser("viewer")
    page = viewer.get(shop.base).text
    assert "Download PDF" in page
    assert "Email statement" not in page
    assert viewer.get(f"{shop.base}/statement.pdf").status_code == 200
    token = csrf_token(page)
    assert viewer.post(f"{shop.base}/statement", data={"csrf_token": token, "request": "ab" * 16}).status_code == 403
    beta = f"/orgs/{shop.beta_org_id}/clients/{shop.beta_connection_id}/customers/{shop.beta_customer_id}"
    owner = browser("owner")
    assert owner.get(f"{beta}/statement.pdf").status_code == 404
    elsewhere = f"/orgs/{shop.org_id}/clients/{shop.second_connection_id}/customers/{shop.customer_id}"
    assert owner.get(f"{elsewhere}/statement.pdf").status_code == 404
    assert owner.get(f"{shop.base[: -len(str(shop.customer_id))]}99999999999/statement.pdf").status_code == 404
    limited = browser("limited")
    assert limited.get(f"{shop.base}/statement.pdf").status_code == 404
    assert _actions(owner) == []
