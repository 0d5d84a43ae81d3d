"""The templates screen through the Flask test client: the list, the editor (save as a new version, a broken or
hostile template refused at its line with what was typed kept, stale saves), the preview on a real open invoice,
create/rename/delete/restore, roles and scoping. CSRF stays on.

The practice (tests/support/impact.py) with the built-in templates and one of its own ("chaser", plain text only);
"standard" and "gentle" remind with due_today and firm.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import markupsafe
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.bootstrap import build
from connector.config import Settings
from connector.domain.model import Role
from connector.library import items
from connector.library.resolve import TEMPLATE
from connector.library.templates import builtin_templates
from connector.storage import Store
from connector.storage.tables import Invoice
from tests.support.clock import FakeClock
from tests.support.impact import NOW, practice
from tests.support.library_rows import add_item
from tests.support.statements import counting_statements
from tests.web.conftest import Account, csrf_token
from web import create_app

pytestmark = pytest.mark.web

CHASER = {
    "subject.txt": "Invoice {{ invoice.number }} for {{ customer_name }}",
    "body.txt": "Hello {{ customer_name }},\n\n{{ invoice.number }}: {{ invoice.balance }} is due.\n",
}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    services = build(settings, clock=FakeClock(NOW))
    app = create_app(settings, services)
    services.store.create_all()
    yield app
    services.store.dispose()


@pytest.fixture
def world(
    store: Store, make_user: Callable[..., Account], client: FlaskClient, login: Callable[..., TestResponse]
) -> dict[str, Any]:
    owner = make_user("Practice", Role.OWNER)
    org_id, clients, _ = practice(store, owner.org_id)
    ids = {name: add_item(store, org_id, TEMPLATE, name, body).item_id for name, body in builtin_templates().items()}
    ids["chaser"] = add_item(store, org_id, TEMPLATE, "chaser", CHASER).item_id
    with store.unit_of_work() as uow:
        invoice = uow.session.scalars(select(Invoice.id).where(Invoice.external_id == "Alpha-c1")).one()
    assert login(client, owner.email, owner.password).status_code == 302
    return {"org": org_id, "clients": clients, "templates": ids, "invoice": invoice}


def _fields(page: str) -> dict[str, str]:
    form = page[page.index('id="template-form"') :]
    form = form[: form.index("</form>")]
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    }
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        fields[name] = html.unescape(value)
    return fields


def _editor(client: FlaskClient, org: int, item: int) -> tuple[str, dict[str, str]]:
    page = client.get(f"/orgs/{org}/templates/{item}")
    assert page.status_code == 200, page.text
    return page.text, _fields(page.text)


def _version(store: Store, org: int, item: int) -> tuple[int, dict[str, Any]]:
    with store.unit_of_work() as uow:
        found = items.get_item(uow, org, item, TEMPLATE)
        return found.version, dict(found.body)


def test_the_list_shows_built_in_and_own_templates_and_who_uses_them(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    page = client.get(f"/orgs/{world['org']}/templates")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for name in ("gentle_nudge", "due_today", "firm", "final_notice", "installment", "discount_offer", "chaser"):
        assert f">{name}</a>" in text
    assert text.count("Built-in") >= 6
    assert "Plain text only" in text  # chaser
    assert "cadence “gentle”, cadence “standard”" in text  # due_today
    assert "Nothing names it" in text


def test_saving_a_template_makes_a_new_version_and_the_editor_allows_the_emails_own_styles(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    page = client.get(f"/orgs/{org}/templates/{chaser}")
    policy = page.headers["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src" not in policy  # scripts stay at default-src 'self'
    _, form = _editor(client, org, chaser)
    form["text"] = "Dear {{ customer_name }},\r\nplease pay {{ total }}.\r\n"
    answer = client.post(f"/orgs/{org}/templates/{chaser}", data=form)
    assert answer.status_code == 302, answer.text
    assert _version(store, org, chaser) == (
        2,
        {**CHASER, "body.txt": "Dear {{ customer_name }},\nplease pay {{ total }}.\n"},
    )
    assert "Saved “chaser” as version 2" in client.get(answer.headers["Location"]).text
    _, same = _editor(client, org, chaser)
    again = client.post(f"/orgs/{org}/templates/{chaser}", data=same, follow_redirects=True)
    assert "Nothing changed, so nothing was saved." in again.text


@pytest.mark.parametrize(
    ("part", "source", "message"),
    [
        ("text", "Hello {{ customer_name }}\n\n{{ customer.nmae }}\n", "line 3: uses a value that does not exist"),
        ("text", "{{ invoice.number }}\n{{ invoice.nmae }}", "line 2: uses a value that does not exist"),
        ("text", "Hi\n{{ ''.__class__ }}", "line 2: tried something templates may not do"),
        ("text", "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}", "20000"),
        ("text", "{{ 'x' * 100000000 }}", "line 1:"),
        ("text", "{% if %}", "line 1: has a syntax error"),
        ("text", "{{ x|attr('__class__') }}", "line 1: tried something templates may not do"),
        ("text", "a" * 70_000, "the limit is 64,000"),
        ("subject", "   ", "Every template needs this part"),
        ("subject", "{{ customer_name }}\n{{ customer_name }}", "one line"),
        ("html", "<p>{{ nope }}</p>", "uses a value that does not exist"),
    ],
)
def test_a_broken_or_hostile_template_is_refused_at_its_line_keeping_what_was_typed(
    client: FlaskClient, world: dict[str, Any], store: Store, part: str, source: str, message: str
) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    _, form = _editor(client, org, chaser)
    form[part] = source
    answer = client.post(f"/orgs/{org}/templates/{chaser}", data=form)
    assert answer.status_code == 200
    assert "Not saved: the template does not work yet." in answer.text
    error = re.search(rf'id="part-{part}-error"[^>]*>(.*?)</small>', answer.text, re.S)
    assert error, answer.text[:3000]
    assert message in html.unescape(error.group(1))
    if len(source) < 1000 and source.strip():
        assert str(markupsafe.escape(source)) in answer.text  # kept, escaped
    assert _version(store, org, chaser)[0] == 1


def test_the_broken_line_is_shown_under_the_refusal(client: FlaskClient, world: dict[str, Any]) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    _, form = _editor(client, org, chaser)
    form["text"] = "Hello\n\n  {{ customer.nmae }}  \nBye"
    answer = client.post(f"/orgs/{org}/templates/{chaser}", data=form)
    assert '<code class="bad-line">{{ customer.nmae }}</code>' in answer.text


def test_a_stale_template_save_shows_theirs_and_what_was_typed(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    _, form = _editor(client, org, chaser)
    with store.unit_of_work() as uow:
        items.update_item(
            uow,
            org,
            chaser,
            {**CHASER, "body.txt": "Theirs {{ customer_name }}"},
            base_version=1,
            actor="other@example.com",
            now=NOW,
        )
        uow.commit()
    form["text"] = "Mine {{ customer_name }}"
    answer = client.post(f"/orgs/{org}/templates/{chaser}", data=form)
    assert "someone else changed this template" in answer.text
    assert "Theirs {{ customer_name }}</textarea>" in answer.text
    assert "What you had typed" in answer.text
    assert "Mine {{ customer_name }}" in answer.text
    assert _version(store, org, chaser)[1]["body.txt"] == "Theirs {{ customer_name }}"


def test_the_preview_renders_the_typed_template_on_a_real_invoice(client: FlaskClient, world: dict[str, Any]) -> None:
    org, clients, invoice = world["org"], world["clients"], world["invoice"]
    firm = world["templates"]["firm"]
    page, form = _editor(client, org, firm)
    assert "INV-c1 · Alpha c1 · £500.00 · due Nov 4, 2026" in page  # the first client's open invoices
    form["subject"] = "Still open: {{ invoice.number }}"
    answer = client.post(
        f"/orgs/{org}/templates/{firm}/preview",
        data={**form, "preview_client": clients["Alpha"], "preview_invoice": invoice},
    )
    assert answer.status_code == 200
    text = answer.text
    assert '<p class="rendered-subject" data-testid="rendered-subject">Still open: INV-c1</p>' in text
    assert "£500.00" in text
    frame = re.search(r'<iframe class="rendered-html" sandbox srcdoc="([^"]*)"', text)
    assert frame, text
    assert frame.group(1).startswith("&lt;!DOCTYPE html&gt;")  # the email's HTML, escaped into the attribute
    assert "<script" not in html.unescape(frame.group(1))

    plain = client.post(
        f"/orgs/{org}/templates/{world['templates']['chaser']}/preview",
        data={
            **_editor(client, org, world["templates"]["chaser"])[1],
            "preview_client": clients["Alpha"],
            "preview_invoice": invoice,
        },
    )
    assert "No HTML version: this email goes out as plain text only." in plain.text
    assert "Invoice INV-c1 for c1" in plain.text


def test_the_preview_refuses_a_broken_template_and_a_foreign_invoice(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    org, clients, invoice, chaser = world["org"], world["clients"], world["invoice"], world["templates"]["chaser"]
    _, form = _editor(client, org, chaser)
    broken = client.post(
        f"/orgs/{org}/templates/{chaser}/preview",
        data={
            **form,
            "text": "ok\n{{ ''.__class__.__mro__ }}",
            "preview_client": clients["Alpha"],
            "preview_invoice": invoice,
        },
    )
    assert broken.status_code == 200
    assert "Plain text: line 2: tried something templates may not do" in html.unescape(broken.text)
    wrong = client.post(
        f"/orgs/{org}/templates/{chaser}/preview",
        data={**form, "preview_client": clients["Bravo"], "preview_invoice": invoice},
    )
    assert "Choose one of the client's open invoices." in html.unescape(wrong.text)
    nothing = client.post(f"/orgs/{org}/templates/{chaser}/preview", data={**form, "preview_client": "x"})
    assert "Choose a client and one of its open invoices." in nothing.text


def test_the_invoice_choice_follows_the_client(client: FlaskClient, world: dict[str, Any]) -> None:
    org, clients, chaser = world["org"], world["clients"], world["templates"]["chaser"]
    answer = client.get(f"/orgs/{org}/templates/{chaser}/invoices?preview_client={clients['Bravo']}")
    assert answer.status_code == 200
    assert answer.text.count("<option") == 2
    assert "Bravo c1" in answer.text
    foreign = client.get(f"/orgs/{org}/templates/{chaser}/invoices?preview_client=999999")
    assert "This client has no open invoice" in foreign.text


def test_create_rename_restore_and_delete(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    org, chaser, firm = world["org"], world["templates"]["chaser"], world["templates"]["firm"]
    token = csrf_token(client.get(f"/orgs/{org}/templates").text)
    created = client.post(f"/orgs/{org}/templates/new", data={"csrf_token": token, "name": "polite", "copy_from": firm})
    assert created.status_code == 302
    new_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert _version(store, org, new_id)[1] == _version(store, org, firm)[1]
    spaced = client.post(
        f"/orgs/{org}/templates/new", data={"csrf_token": token, "name": "two words", "copy_from": firm}
    )
    assert "no spaces" in html.unescape(client.get(spaced.headers["Location"]).text)

    renamed = client.post(f"/orgs/{org}/templates/{chaser}/rename", data={"csrf_token": token, "name": "chase"})
    assert "Renamed “chaser” to “chase”" in client.get(renamed.headers["Location"]).text
    _, form = _editor(client, org, chaser)
    client.post(f"/orgs/{org}/templates/{chaser}", data={**form, "subject": "Changed {{ invoice.number }}"})
    restored = client.post(f"/orgs/{org}/templates/{chaser}/restore", data={"csrf_token": token, "version": "1"})
    assert "Restored version 1 as version 4" in client.get(restored.headers["Location"]).text
    assert _version(store, org, chaser)[1] == CHASER

    in_use = client.post(f"/orgs/{org}/templates/{firm}/delete", data={"csrf_token": token})
    text = html.unescape(client.get(in_use.headers["Location"]).text)
    assert "Not deleted: the template “firm” is in use (cadence “standard”)" in text
    gone = client.post(f"/orgs/{org}/templates/{chaser}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "Deleted the template “chase”" in gone.text
    assert client.get(f"/orgs/{org}/templates/{chaser}").status_code == 404


def test_a_viewer_reads_templates_but_every_post_is_403(
    client: FlaskClient, world: dict[str, Any], make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    viewer = make_user("Practice", Role.VIEWER)
    client.post("/logout", data={"csrf_token": csrf_token(client.get(f"/orgs/{org}/templates").text)})
    login(client, viewer.email, viewer.password)
    page = client.get(f"/orgs/{org}/templates/{chaser}")
    assert page.status_code == 200
    assert "You can read this template" in page.text
    assert "Save as version" not in page.text
    assert "Preview on a real invoice" not in page.text
    token = csrf_token(page.text)
    data = {**_fields(page.text), "csrf_token": token, "name": "x", "version": "1", "copy_from": str(chaser)}
    for path in [f"{chaser}", f"{chaser}/preview", f"{chaser}/rename", f"{chaser}/delete", f"{chaser}/restore", "new"]:
        assert client.post(f"/orgs/{org}/templates/{path}", data=data).status_code == 403, path


def test_another_organizations_member_gets_404(
    client: FlaskClient, world: dict[str, Any], make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> None:
    org, chaser = world["org"], world["templates"]["chaser"]
    stranger = make_user("Elsewhere", Role.OWNER)
    client.post("/logout", data={"csrf_token": csrf_token(client.get(f"/orgs/{org}/templates").text)})
    login(client, stranger.email, stranger.password)
    assert client.get(f"/orgs/{org}/templates").status_code == 404
    assert client.get(f"/orgs/{org}/templates/{chaser}").status_code == 404
    assert client.get(f"/orgs/{stranger.org_id}/templates/{chaser}").status_code == 404
    assert "No templates yet" in client.get(f"/orgs/{stranger.org_id}/templates").text
    assert client.get(f"/orgs/{stranger.org_id}/templates/{chaser}/invoices").status_code == 404


def test_the_list_sends_the_same_statements_however_many_templates(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org = world["org"]
    with counting_statements(store.engine) as before:
        assert client.get(f"/orgs/{org}/templates").status_code == 200
    for number in range(15):
        add_item(store, org, TEMPLATE, f"extra{number}", CHASER)
    with counting_statements(store.engine) as after:
        page = client.get(f"/orgs/{org}/templates")
    assert "extra14" in page.text
    assert after.count == before.count, after.report()
    assert after.count <= 12, after.report()
