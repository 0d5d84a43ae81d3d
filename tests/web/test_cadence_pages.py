"""The cadences screen through the Flask test client: the library, the cadence editor (save as a new version, stale
saves, steps added/removed/moved, the live preview, the impact), policies, create/rename/delete/restore, roles,
scoping and hostile input. CSRF stays on: every form is posted with the token the page rendered.

The practice (tests/support/impact.py): Alpha follows "standard", Bravo "gentle", Charlie "gentle" but its customer c1
"standard"; "standard" reminds on the due date and 5 days late and charges a flat 25.00 fee 10 days late.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.bootstrap import build
from connector.config import Settings
from connector.domain.model import Role
from connector.library import items
from connector.library.resolve import DISCOUNT, LATE_FEE, TEMPLATE
from connector.storage import Store
from connector.storage.tables import Membership, MembershipClient
from tests.support.clock import FakeClock
from tests.support.impact import NOW, practice
from tests.support.library_rows import add_item
from tests.support.statements import counting_statements
from tests.web.conftest import Account, csrf_token
from web import create_app

pytestmark = pytest.mark.web


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The app on a fresh database, its clock at the practice's Monday morning."""
    services = build(settings, clock=FakeClock(NOW))
    app = create_app(settings, services)
    services.store.create_all()
    yield app
    services.store.dispose()


@pytest.fixture
def world(
    store: Store, make_user: Callable[..., Account], client: FlaskClient, login: Callable[..., TestResponse]
) -> dict[str, Any]:
    """An owner of the practice, signed in; its organization, clients and library item ids."""
    owner = make_user("Practice", Role.OWNER)
    org_id, clients, ids = practice(store, owner.org_id)
    assert login(client, owner.email, owner.password).status_code == 302
    return {"org": org_id, "clients": clients, "items": ids, "owner": owner}


def _form(page: str) -> dict[str, Any]:
    """The editor's fields as a browser would post them (text inputs, selects, checked boxes, textareas)."""
    fields: dict[str, Any] = {}
    form = page[page.index('id="cadence-form"') if 'id="cadence-form"' in page else page.index('id="policy-form"') :]
    form = form[: form.index("</form>")]
    for tag in re.finditer(r"<input\b[^>]*>", form):
        attrs = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', tag.group(0)))
        name, kind = attrs.get("name"), attrs.get("type", "text")
        if not name or (kind == "checkbox" and " checked" not in tag.group(0)):
            continue
        value = html.unescape(attrs.get("value", "on"))
        if name in fields:
            fields[name] = [*([fields[name]] if isinstance(fields[name], str) else fields[name]), value]
        else:
            fields[name] = value
    for control in re.finditer(r'<select\b[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', control.group(2)) or re.search(
            r'<option value="([^"]*)"', control.group(2)
        )
        fields[control.group(1)] = html.unescape(chosen.group(1)) if chosen else ""
    return fields


def _editor(client: FlaskClient, org: int, item: int) -> tuple[str, dict[str, Any]]:
    page = client.get(f"/orgs/{org}/cadences/{item}")
    assert page.status_code == 200, page.text
    return page.text, _form(page.text)


def _body(store: Store, org: int, item: int) -> tuple[int, dict[str, Any]]:
    with store.unit_of_work() as uow:
        found = items.get_item(uow, org, item)
        return found.version, dict(found.body)


# -- the library ------------------------------------------------------------------------------------------------
def test_the_library_lists_cadences_with_their_clients_and_the_policies(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    with counting_statements(store.engine) as log:
        page = client.get(f"/orgs/{world['org']}/cadences")
    assert page.status_code == 200
    text = page.text
    assert "standard" in text
    assert "gentle" in text
    assert "Alpha" in text
    assert "Bravo, Charlie" in text
    assert "1 customer by their own choice" in text
    assert "A flat fee of 25" in text
    assert "cadence “standard”" in text  # the flat fee is named by standard
    assert "No cadence names it" in text  # the spare discount
    assert log.count <= 12, log.report()
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]  # the app's policy (Pico's icons)


def test_an_organization_without_a_library_sets_it_up_from_the_starter(
    client: FlaskClient, make_user: Callable[..., Account], login: Callable[..., TestResponse], store: Store
) -> None:
    owner = make_user("New Co", Role.OWNER)
    login(client, owner.email, owner.password)
    page = client.get(f"/orgs/{owner.org_id}/cadences")
    assert "Your library is not set up yet" in page.text
    answer = client.post(f"/orgs/{owner.org_id}/cadences/setup", data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 302
    with store.unit_of_work() as uow:  # the test install's starter has the built-in templates and no cadence
        assert items.list_items(uow, owner.org_id, TEMPLATE)
    after = client.get(f"/orgs/{owner.org_id}/cadences").text
    assert "Your library is set up" in after
    assert "No cadences yet" in after
    assert "New cadence" in after


# -- the editor --------------------------------------------------------------------------------------------------
def test_saving_an_edited_step_makes_a_new_version(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    text, form = _editor(client, org, standard)
    assert 'value="late"' in text  # the second step's name
    form["steps-1-offset"] = "7"
    form["steps-1-note"] = "Second reminder <sent>"
    form["op"] = "save"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert answer.status_code == 302, answer.text
    version, body = _body(store, org, standard)
    assert version == 2
    assert body["steps"][1] == {"id": "late", "offset": 7, "remind": "firm", "note": "Second reminder <sent>"}
    assert body["window"] == {
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "08:00",
        "end": "18:00",
    }
    assert body["time_zone"] == "Europe/London"
    after = client.get(answer.headers["Location"]).text
    assert "Saved “standard” as version 2" in after
    assert "Second reminder &lt;sent&gt;" in after  # escaped, never markup

    _, unchanged = _editor(client, org, standard)
    unchanged["op"] = "save"
    again = client.post(f"/orgs/{org}/cadences/{standard}", data=unchanged, follow_redirects=True)
    assert "Nothing changed, so nothing was saved." in again.text
    assert _body(store, org, standard)[0] == 2


def test_a_stale_save_says_someone_else_changed_it_and_shows_theirs(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    with store.unit_of_work() as uow:  # someone else saves first
        current = items.get_item(uow, org, standard)
        theirs = {**current.body, "steps": [*current.body["steps"], {"id": "theirs", "offset": 20, "remind": "firm"}]}
        items.update_item(uow, org, standard, theirs, base_version=1, actor="other@example.com", now=NOW)
        uow.commit()
    form["steps-0-offset"] = "-2"
    form["op"] = "save"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert answer.status_code == 200  # the page shows the refusal (a browser logs 4xx pages as errors)
    assert "someone else changed this cadence" in answer.text
    assert 'value="theirs"' in answer.text  # their version is in the form
    assert "What you had typed" in answer.text
    assert _body(store, org, standard)[0] == 2  # theirs stays


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        ("99999", "99999 calendar days is beyond a year (at most 366)"),
        ("1234567", "Too far: at most 366 days"),
        ("400", "400 calendar days is beyond a year (at most 366)"),
        ("-1000", "beyond a year"),
        ("abc", "Enter a whole number of days"),
        ("1e3", "Enter a whole number of days"),
        ("9" * 5000, "Too far"),
        ("", "Enter a whole number of days"),
    ],
)
def test_a_bad_offset_is_refused_next_to_its_field_keeping_what_was_typed(
    client: FlaskClient, world: dict[str, Any], store: Store, offset: str, message: str
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    form["steps-0-offset"] = offset
    form["steps-2-note"] = "kept <b>note</b>"
    form["op"] = "save"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert answer.status_code == 200
    assert "Not saved:" in answer.text
    error = re.search(r'id="steps-0-offset-error">([^<]*)<', answer.text)
    assert error, answer.text
    assert message in error.group(1)
    assert 'aria-invalid="true" aria-describedby="steps-0-offset-error"' in answer.text
    assert "kept &lt;b&gt;note&lt;/b&gt;" in answer.text
    assert _body(store, org, standard)[0] == 1


def test_library_refusals_land_next_to_the_step_and_field_they_name(client: FlaskClient, world: dict[str, Any]) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    form["steps-0-late_fee"] = "flat"  # a fee on the due date
    form["steps-2-offset"] = "3"  # before the second step
    form["op"] = "save"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert answer.status_code == 200
    assert "Not saved:" in answer.text
    assert re.search(r'id="steps-0-late_fee-error">A late fee cannot be applied before the due date', answer.text)

    _, form = _editor(client, org, standard)
    form["steps-2-offset"] = "3"
    form["op"] = "save"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert re.search(r'id="steps-2-offset-error">3 calendar days overlaps step', answer.text)

    _, form = _editor(client, org, standard)
    form.update({"send_time": "25:00", "weekdays": [], "minimum": "GBP five", "op": "save"})
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert 'id="send_time-error"' in answer.text
    assert 'id="weekdays-error">Choose at least one weekday' in answer.text
    assert 'id="minimum-error"' in answer.text

    _, form = _editor(client, org, standard)
    form.update({"time_zone": "Mars/Olympus", "op": "save"})
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data=form)
    assert 'id="time_zone-error"' in answer.text


def test_steps_are_added_removed_and_moved_without_saving(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    partial = client.post(
        f"/orgs/{org}/cadences/{standard}/steps", data={**form, "op": "add"}, headers={"HX-Request": "true"}
    )
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<div id="steps"')
    assert partial.text.count('data-testid="step"') == 4
    assert 'value="step-4"' in partial.text
    assert 'value="17"' in partial.text  # a week after the last step

    moved = client.post(f"/orgs/{org}/cadences/{standard}/steps", data={**form, "op": "down-0"})
    names = re.findall(r'name="steps-\d+-id" type="text" value="([^"]*)"', moved.text)
    assert names == ["late", "due", "fee"]
    removed = client.post(f"/orgs/{org}/cadences/{standard}", data={**form, "op": "remove-1"})  # no script
    assert removed.status_code == 200
    assert re.findall(r'name="steps-\d+-id" type="text" value="([^"]*)"', removed.text) == ["due", "fee"]
    assert _body(store, org, standard)[0] == 1  # nothing saved


def test_the_live_preview_puts_the_unsaved_cadence_on_a_client_in_words(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    org, standard, clients = world["org"], world["items"]["cadence:standard"], world["clients"]
    _, form = _editor(client, org, standard)
    form["steps-1-offset"] = "2"
    answer = client.post(f"/orgs/{org}/cadences/{standard}/preview", data={**form, "preview_client": clients["Alpha"]})
    assert answer.status_code == 200
    text = answer.text
    assert "Alpha</strong>" in text
    assert "follows this cadence" in text
    assert "Wednesday, November 4, 2026" in text
    assert "Reminder email about invoice INV-c1 (£500.00), template “due_today” · step “due”" in text
    assert "Friday, November 6, 2026" in text  # the unsaved offset: 2 days late
    assert "Late fee of €25.00 on invoice INV-c2" in text
    assert "late fees €25.00 + £25.00" in text  # per currency, never summed

    bravo = client.post(f"/orgs/{org}/cadences/{standard}/preview", data={**form, "preview_client": clients["Bravo"]})
    assert "follows “gentle”: shown as if it followed this one" in bravo.text

    broken = client.post(
        f"/orgs/{org}/cadences/{standard}/preview",
        data={**form, "steps-0-offset": "5000", "preview_client": clients["Alpha"]},
    )
    assert broken.status_code == 200
    assert "Step 1 “due”, offset: 5000 calendar days is beyond a year" in broken.text
    nobody = client.post(f"/orgs/{org}/cadences/{standard}/preview", data={**form, "preview_client": "99999999999"})
    assert "Client: Choose a client to preview on." in nobody.text


def test_the_impact_summarizes_what_saving_changes_per_client(client: FlaskClient, world: dict[str, Any]) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    form["steps-2-late_fee"] = ""  # no more fee: a note instead
    form["steps-2-note"] = "Fee waived"
    answer = client.post(f"/orgs/{org}/cadences/{standard}/impact", data=form)
    assert answer.status_code == 200
    text = answer.text.replace("\u2212", "-")
    assert "-2 late fees (-€25.00, -£25.00), +2 notes at Alpha" in text
    assert "-1 late fee (-£25.00), +1 note at Charlie" in text
    assert "Bravo" not in text

    unchanged = client.post(f"/orgs/{org}/cadences/{standard}/impact", data=_editor(client, org, standard)[1])
    assert "no change at Alpha; no change at Charlie." in " ".join(unchanged.text.split())


# -- create, rename, delete, restore ----------------------------------------------------------------------------
def test_a_new_cadence_is_a_copy_and_an_unused_one_can_be_deleted(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    token = csrf_token(client.get(f"/orgs/{org}/cadences").text)
    answer = client.post(
        f"/orgs/{org}/cadences/new", data={"csrf_token": token, "name": "strict", "copy_from": standard}
    )
    assert answer.status_code == 302
    new_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    assert _body(store, org, new_id)[1] == _body(store, org, standard)[1]
    taken = client.post(f"/orgs/{org}/cadences/new", data={"csrf_token": token, "name": "strict", "copy_from": ""})
    assert "already a cadence named 'strict'" in html.unescape(client.get(taken.headers["Location"]).text)

    renamed = client.post(f"/orgs/{org}/cadences/{new_id}/rename", data={"csrf_token": token, "name": "stricter"})
    assert "Renamed “strict” to “stricter”" in client.get(renamed.headers["Location"]).text
    deleted = client.post(f"/orgs/{org}/cadences/{new_id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "Deleted the cadence “stricter”" in deleted.text
    assert client.get(f"/orgs/{org}/cadences/{new_id}").status_code == 404


def test_deleting_a_cadence_in_use_is_refused_naming_its_clients(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, gentle = world["org"], world["items"]["cadence:gentle"]
    page = client.get(f"/orgs/{org}/cadences/{gentle}").text
    assert 'data-confirm="Delete the cadence “gentle”?' in page
    answer = client.post(f"/orgs/{org}/cadences/{gentle}/delete", data={"csrf_token": csrf_token(page)})
    text = client.get(answer.headers["Location"]).text
    assert "Not deleted: the cadence “gentle” is in use (clients Bravo, Charlie)" in text
    with store.unit_of_work() as uow:
        assert items.get_item(uow, org, gentle).name == "gentle"


def test_an_old_version_is_restored_as_a_new_version(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    client.post(f"/orgs/{org}/cadences/{standard}", data={**form, "steps-1-offset": "6", "op": "save"})
    page = client.get(f"/orgs/{org}/cadences/{standard}").text
    answer = client.post(
        f"/orgs/{org}/cadences/{standard}/restore", data={"csrf_token": csrf_token(page), "version": "1"}
    )
    assert "Restored version 1 as version 3" in client.get(answer.headers["Location"]).text
    assert _body(store, org, standard)[1]["steps"][1]["offset"] == 5
    missing = client.post(
        f"/orgs/{org}/cadences/{standard}/restore", data={"csrf_token": csrf_token(page), "version": "77"}
    )
    assert "has no version 77" in client.get(missing.headers["Location"]).text


# -- policies ---------------------------------------------------------------------------------------------------
def test_a_late_fee_policy_is_edited_with_its_fields_checked(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, flat = world["org"], world["items"]["late_fee:flat"]
    page = client.get(f"/orgs/{org}/cadences/policies/{flat}")
    assert page.status_code == 200
    form = _form(page.text)
    assert form["amount"] == "25"
    form["amount"] = "30.5"
    answer = client.post(f"/orgs/{org}/cadences/policies/{flat}", data=form)
    assert answer.status_code == 302, answer.text
    assert _body(store, org, flat) == (2, {"kind": "flat", "amount": 30.5, "grace_days": 0, "warning_days": 0})

    form = _form(client.get(f"/orgs/{org}/cadences/policies/{flat}").text)
    for field, value, message in [
        ("amount", "-5", "Must be zero or more."),
        ("amount", "1e999", "Enter a number such as 25 or 1.5"),
        ("amount", "9" * 400, "Far too large"),
        ("grace_days", "4000", "Must be between 0 and 366, got 4000"),
        ("max_count", "12", "max_count above 1 needs repeat"),
        ("repeat", "fortnightly", "Write month, week or a number of days"),
    ]:
        answer = client.post(f"/orgs/{org}/cadences/policies/{flat}", data={**form, field: value})
        assert answer.status_code == 200, (field, value)
        assert "Not saved: one problem" in answer.text
        error = re.search(rf'id="{field}-error">([^<]*)<', answer.text)
        assert error, (field, value, answer.text[:2000])
        assert message in error.group(1), (field, error.group(1))
    assert _body(store, org, flat)[0] == 2


def test_a_discount_and_a_new_policy(client: FlaskClient, world: dict[str, Any], store: Store) -> None:
    org, spare = world["org"], world["items"]["discount:spare"]
    form = _form(client.get(f"/orgs/{org}/cadences/policies/{spare}").text)
    answer = client.post(f"/orgs/{org}/cadences/policies/{spare}", data={**form, "percent": "150"})
    assert re.search(r'id="percent-error">Must be below 100, got 150', answer.text)
    token = form["csrf_token"]
    created = client.post(
        f"/orgs/{org}/cadences/policies/new", data={"csrf_token": token, "kind": LATE_FEE, "name": "late25"}
    )
    assert created.status_code == 302
    with store.unit_of_work() as uow:
        names = [item.name for item in items.list_items(uow, org, LATE_FEE)]
    assert "late25" in names
    odd = client.post(f"/orgs/{org}/cadences/policies/new", data={"csrf_token": token, "kind": "cadence", "name": "x"})
    assert "Choose a late fee" in client.get(odd.headers["Location"]).text
    deleted = client.post(f"/orgs/{org}/cadences/policies/{spare}/delete", data={"csrf_token": token})
    assert "Deleted the discount policy “spare”" in client.get(deleted.headers["Location"]).text
    in_use = client.post(
        f"/orgs/{org}/cadences/policies/{world['items']['late_fee:flat']}/delete", data={"csrf_token": token}
    )
    assert "is in use (cadence “standard”)" in html.unescape(client.get(in_use.headers["Location"]).text)
    with store.unit_of_work() as uow:
        assert [item.name for item in items.list_items(uow, org, DISCOUNT)] == []


def test_the_policy_impact_lists_the_clients_whose_cadences_name_it(client: FlaskClient, world: dict[str, Any]) -> None:
    org, flat = world["org"], world["items"]["late_fee:flat"]
    form = _form(client.get(f"/orgs/{org}/cadences/policies/{flat}").text)
    answer = client.post(f"/orgs/{org}/cadences/policies/{flat}/impact", data={**form, "amount": "40"})
    assert "2 late fees at a new amount (+€15.00, +£15.00) at Alpha" in answer.text
    bad = client.post(f"/orgs/{org}/cadences/policies/{flat}/impact", data={**form, "amount": "-1"})
    assert "Amount of a flat fee: Must be zero or more." in bad.text


# -- roles and scoping -------------------------------------------------------------------------------------------
def test_a_viewer_reads_but_every_post_is_403(
    client: FlaskClient, world: dict[str, Any], make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> None:
    org, standard, flat = world["org"], world["items"]["cadence:standard"], world["items"]["late_fee:flat"]
    viewer = make_user("Practice", Role.VIEWER)
    client.post("/logout", data={"csrf_token": csrf_token(client.get(f"/orgs/{org}/cadences").text)})
    login(client, viewer.email, viewer.password)
    page = client.get(f"/orgs/{org}/cadences/{standard}")
    assert page.status_code == 200
    assert "You can read this cadence" in page.text
    assert "Save as version" not in page.text
    assert "New cadence" not in client.get(f"/orgs/{org}/cadences").text
    assert client.get(f"/orgs/{org}/cadences/policies/{flat}").status_code == 200
    token = csrf_token(page.text)
    form = {**_form(page.text), "csrf_token": token, "op": "save"}
    for path in [
        f"{standard}",
        f"{standard}/steps",
        f"{standard}/preview",
        f"{standard}/impact",
        f"{standard}/rename",
        f"{standard}/delete",
        f"{standard}/restore",
        "new",
        "setup",
        f"policies/{flat}",
        f"policies/{flat}/impact",
        f"policies/{flat}/delete",
        "policies/new",
    ]:
        assert client.post(f"/orgs/{org}/cadences/{path}", data=form).status_code == 403, path


def test_another_organizations_member_gets_404_everywhere(
    client: FlaskClient, world: dict[str, Any], make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    stranger = make_user("Elsewhere", Role.OWNER)
    client.post("/logout", data={"csrf_token": csrf_token(client.get(f"/orgs/{org}/cadences").text)})
    login(client, stranger.email, stranger.password)
    token = csrf_token(client.get(f"/orgs/{stranger.org_id}/cadences").text)
    for path in ["", f"/{standard}", f"/policies/{world['items']['late_fee:flat']}"]:
        assert client.get(f"/orgs/{org}/cadences{path}").status_code == 404
    assert client.post(f"/orgs/{org}/cadences/{standard}", data={"csrf_token": token}).status_code == 404
    # Their own organization never reaches the practice's items by id.
    assert client.get(f"/orgs/{stranger.org_id}/cadences/{standard}").status_code == 404
    own = client.post(f"/orgs/{stranger.org_id}/cadences/{standard}/delete", data={"csrf_token": token})
    assert own.status_code == 404
    assert client.get(f"/orgs/{org}/cadences/{2**40}").status_code == 404


def test_a_client_limited_accountant_previews_on_their_client_but_cannot_change_the_library(
    client: FlaskClient,
    world: dict[str, Any],
    make_user: Callable[..., Account],
    login: Callable[..., TestResponse],
    store: Store,
) -> None:
    org, standard, clients = world["org"], world["items"]["cadence:standard"], world["clients"]
    limited = make_user("Practice", Role.ACCOUNTANT)
    with store.unit_of_work() as uow:
        membership = uow.session.scalars(select(Membership).where(Membership.user_id == limited.user_id)).one()
        membership.client_limited = True
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=clients["Bravo"]))
        uow.commit()
    client.post("/logout", data={"csrf_token": csrf_token(client.get(f"/orgs/{org}/cadences").text)})
    login(client, limited.email, limited.password)
    index = client.get(f"/orgs/{org}/cadences").text
    assert "Alpha" not in index
    page = client.get(f"/orgs/{org}/cadences/{standard}")
    form = _form(page.text)
    assert "Save as version" not in page.text
    assert client.post(f"/orgs/{org}/cadences/{standard}", data={**form, "op": "save"}).status_code == 403
    mine = client.post(f"/orgs/{org}/cadences/{standard}/preview", data={**form, "preview_client": clients["Bravo"]})
    assert "Bravo</strong>" in mine.text
    theirs = client.post(f"/orgs/{org}/cadences/{standard}/preview", data={**form, "preview_client": clients["Alpha"]})
    assert "Choose a client to preview on." in theirs.text
    impact = client.post(
        f"/orgs/{org}/cadences/{standard}/impact", data={**form, "steps-2-late_fee": "", "steps-2-note": "No fee"}
    )
    assert "Alpha" not in impact.text


def test_more_steps_than_the_editor_takes_are_refused_not_cut(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    _, form = _editor(client, org, standard)
    for index in range(3, 80):
        form[f"steps-{index}-id"] = f"s{index}"
        form[f"steps-{index}-offset"] = str(20 + index)
        form[f"steps-{index}-remind"] = "firm"
    answer = client.post(f"/orgs/{org}/cadences/{standard}", data={**form, "op": "save"})
    assert "A cadence has at most 60 steps." in answer.text
    assert _body(store, org, standard)[0] == 1


def test_the_library_sends_the_same_statements_however_many_cadences_and_clients(
    client: FlaskClient, world: dict[str, Any], store: Store
) -> None:
    org = world["org"]
    with counting_statements(store.engine) as before:
        assert client.get(f"/orgs/{org}/cadences").status_code == 200
    with store.unit_of_work() as uow:
        for number in range(12):
            uow.connections.add(org, "fake", f"t-more-{number}", f"More {number}")
        uow.commit()
    gentle = _body(store, org, world["items"]["cadence:gentle"])[1]
    for number in range(12):
        add_item(store, org, "cadence", f"copy{number}", gentle)
    with counting_statements(store.engine) as after:
        page = client.get(f"/orgs/{org}/cadences")
    assert "copy11" in page.text
    assert "More 11" in page.text
    assert after.count == before.count, after.report()


def test_markup_in_names_and_texts_is_shown_as_text(client: FlaskClient, world: dict[str, Any]) -> None:
    org, standard = world["org"], world["items"]["cadence:standard"]
    token = csrf_token(client.get(f"/orgs/{org}/cadences").text)
    answer = client.post(
        f"/orgs/{org}/cadences/new",
        data={"csrf_token": token, "name": '<img src=x onerror="alert(1)">', "copy_from": standard},
    )
    page = client.get(answer.headers["Location"]).text
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    index = client.get(f"/orgs/{org}/cadences").text
    assert "<img src=x" not in index
    blank = client.post(f"/orgs/{org}/cadences/new", data={"csrf_token": token, "name": "  ", "copy_from": standard})
    assert "expected a non-empty name" in html.unescape(client.get(blank.headers["Location"]).text)
    newline = client.post(f"/orgs/{org}/cadences/{standard}/rename", data={"csrf_token": token, "name": "a\nb"})
    assert "one line of printable characters" in html.unescape(client.get(newline.headers["Location"]).text)
