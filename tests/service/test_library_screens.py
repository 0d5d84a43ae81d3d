"""The read models behind the cadences and templates screens, on SQLite and PostgreSQL: a cadence's unsaved body
previewed on a client (connector.outbox.cadence_preview), the library listed with who uses each item
(connector.library.listing), and a template's typed parts rendered on a real open invoice
(connector.library.template_preview).

The practice (tests/support/impact.py): Alpha follows "standard", Bravo "gentle", Charlie "gentle" but its customer c1
"standard", which reminds on the due date and 5 days late and charges a flat 25.00 fee 10 days late.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.library.listing import library_listing
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, TEMPLATE
from connector.library.template_preview import open_invoices, render_on_invoice
from connector.outbox.cadence_preview import preview_cadence
from connector.storage import Store
from connector.storage.tables import Action, ClientSettings, Connection, Invoice, Organization
from tests.support.impact import DUE, NOW, STANDARD, STARTER, cadence, practice
from tests.support.library_rows import add_item

TEMPLATE_BODY = {
    "subject.txt": "Invoice {{ invoice.number }} for {{ customer_name }}",
    "body.txt": "Hello {{ customer_name }},\n{{ invoice.number }}: {{ invoice.balance }} due {{ invoice.due_date }}.\n"
    "Sent before: {{ history.count }}\n{{ business_name }}\n",
}


def _days(preview: object) -> dict[object, list[tuple[str, str, tuple[str, ...], str]]]:
    return {
        day.day: [(line.kind, line.customer, line.invoices, line.step) for line in day.lines]
        for day in preview.plan  # type: ignore[attr-defined]
    }


# -- the cadence preview -------------------------------------------------------------------------------------
def test_the_unsaved_cadence_runs_forward_on_a_client_that_follows_it(store: Store) -> None:
    org_id, clients, items = practice(store)
    nudged = cadence(*STANDARD["steps"][:2], {"id": "nudge", "offset": 7, "remind": "firm"}, STANDARD["steps"][2])

    preview = preview_cadence(store, org_id, STARTER, items["cadence:standard"], nudged, clients["Alpha"], NOW)

    assert (preview.client, preview.cadence, preview.follows, preview.days) == ("Alpha", "standard", True, 30)
    days = _days(preview)
    assert [kind for kind, *_ in days[DUE]] == ["remind", "remind"]  # c1 and c2, each its own email
    assert {customer for _, customer, _, _ in days[DUE]} == {"Alpha c1", "Alpha c2"}
    assert {invoices for _, _, invoices, _ in days[DUE]} == {("INV-c1",), ("INV-c2",)}  # numbers, not ledger ids
    assert {step for *_, step in days[DUE + timedelta(days=7)]} == {"nudge"}  # the unsaved step
    fees = [line for day in preview.plan for line in day.lines if line.kind == "late_fee"]
    assert sorted(str(fee.amount) for fee in fees) == ["25.00 EUR", "25.00 GBP"]
    assert all(day.day >= NOW.date() for day in preview.plan)
    assert preview.count == sum(len(day.lines) for day in preview.plan)


def test_a_client_following_another_cadence_is_shown_as_if_it_followed_this_one(store: Store) -> None:
    org_id, clients, items = practice(store)
    preview = preview_cadence(store, org_id, STARTER, items["cadence:standard"], STANDARD, clients["Bravo"], NOW)

    assert (preview.follows, preview.followed) == (False, "gentle")
    steps = {line.step for day in preview.plan for line in day.lines}
    assert steps == {"due", "late", "fee"}  # standard's steps, on Bravo's invoices
    # Nothing was saved: Bravo still follows "gentle".
    with store.unit_of_work() as uow:
        settings = uow.session.get(ClientSettings, clients["Bravo"])
        assert settings is not None
        assert settings.cadence_id == items["cadence:gentle"]


def test_a_preview_names_the_field_at_fault_and_refuses_what_is_not_the_organizations(store: Store) -> None:
    org_id, clients, items = practice(store)
    standard = items["cadence:standard"]
    too_far = cadence({"id": "due", "offset": 9999, "remind": "due_today"})
    with pytest.raises(InvalidInput) as refused:
        preview_cadence(store, org_id, STARTER, standard, too_far, clients["Alpha"], NOW)
    assert refused.value.field == "body.offset"
    assert "step 'due'" in refused.value.user_message
    assert "beyond a year" in refused.value.user_message

    unknown_fee = cadence({"id": "fee", "offset": 3, "late_fee": "nope"})
    with pytest.raises(InvalidInput, match="unknown late-fee policy 'nope'"):
        preview_cadence(store, org_id, STARTER, standard, unknown_fee, clients["Alpha"], NOW)

    other_org, other_clients, _ = practice(store)
    with pytest.raises(UnknownRecord) as unknown:
        preview_cadence(store, org_id, STARTER, standard, STANDARD, other_clients["Alpha"], NOW)
    assert unknown.value.field == "connection_id"
    with pytest.raises(UnknownRecord):  # a client-limited member previews on their clients only
        preview_cadence(
            store, org_id, STARTER, standard, STANDARD, clients["Alpha"], NOW, connection_ids={clients["Bravo"]}
        )
    with pytest.raises(UnknownRecord) as not_a_cadence:
        preview_cadence(store, org_id, STARTER, items["late_fee:flat"], STANDARD, clients["Alpha"], NOW)
    assert not_a_cadence.value.field == "item_id"
    with pytest.raises(UnknownRecord):
        preview_cadence(store, other_org, STARTER, standard, STANDARD, other_clients["Alpha"], NOW)
    with pytest.raises(UnknownRecord):
        preview_cadence(store, org_id, STARTER, standard, STANDARD, 2**40, NOW)
    with pytest.raises(InvalidInput) as days:
        preview_cadence(store, org_id, STARTER, standard, STANDARD, clients["Alpha"], NOW, 500)
    assert days.value.field == "days"


# -- the library listed -----------------------------------------------------------------------------------------
def test_the_listing_names_who_follows_each_cadence_and_who_names_each_policy(store: Store) -> None:
    org_id, clients, items = practice(store)
    with store.unit_of_work() as uow:
        # A client with no settings row but a legacy cadence name, and one that names nothing: the default.
        uow.session.add(
            Connection(organization_id=org_id, provider="fake", tenant_id="t-d", name="Delta", cadence="standard")
        )
        uow.session.add(Connection(organization_id=org_id, provider="fake", tenant_id="t-e", name="Echo"))
        uow.session.add(
            Connection(organization_id=org_id, provider="fake", tenant_id="t-g", name="Gone", status="disconnected")
        )
        organization = uow.session.get(Organization, org_id)
        assert organization is not None
        organization.settings = {"default_cadence_id": items["cadence:gentle"]}
        uow.commit()
        listed = library_listing(uow, org_id)

    cadences = {entry.entry.name: entry for entry in listed[CADENCE]}
    assert [name for _, name in cadences["standard"].clients] == ["Alpha", "Delta"]
    assert cadences["standard"].customers == 1  # Charlie's c1
    assert [name for _, name in cadences["gentle"].clients] == ["Bravo", "Charlie", "Echo"]
    assert (cadences["gentle"].default, cadences["standard"].default) == (True, False)
    fees = {entry.entry.name: entry for entry in listed[LATE_FEE]}
    assert fees["flat"].users == ((CADENCE, "standard"),)
    assert listed[DISCOUNT][0].users == ()
    assert not listed[DISCOUNT][0].in_use

    with store.unit_of_work() as uow:
        limited = library_listing(uow, org_id, connection_ids={clients["Bravo"]})
    by_name = {entry.entry.name: entry for entry in limited[CADENCE]}
    assert [name for _, name in by_name["gentle"].clients] == ["Bravo"]
    assert (by_name["standard"].clients, by_name["standard"].customers) == ((), 0)


def test_the_listing_of_an_organization_without_a_library_is_empty(store: Store) -> None:
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add("Empty").id
        uow.commit()
        assert library_listing(uow, org_id) == {}


# -- a template on a real invoice ------------------------------------------------------------------------------
def _with_template(store: Store) -> tuple[int, dict[str, int], int, str]:
    org_id, clients, _ = practice(store)
    add_item(store, org_id, TEMPLATE, "chaser", TEMPLATE_BODY)
    with store.unit_of_work() as uow:
        invoice_id = uow.session.scalars(select(Invoice.id).where(Invoice.external_id == "Alpha-c1")).one()
    return org_id, clients, invoice_id, "chaser"


def test_a_template_renders_on_a_real_open_invoice_as_the_mailer_would(store: Store) -> None:
    org_id, clients, invoice_id, name = _with_template(store)
    with store.unit_of_work() as uow:
        uow.session.add(
            Action(
                key="k-sent",
                connection_id=clients["Alpha"],
                kind="remind",
                step="due",
                state="done",
                invoice_external_id="Alpha-c1",
                customer_external_id="c1",
                scheduled_at=NOW - timedelta(days=1),
                updated_at=NOW - timedelta(days=1),
                created_at=NOW - timedelta(days=1),
            )
        )
        settings = uow.session.get(ClientSettings, clients["Alpha"])
        assert settings is not None
        settings.business_name = "Alpha Studio"
        uow.commit()
        choices = open_invoices(uow, org_id, clients["Alpha"])
        rendered = render_on_invoice(uow, org_id, clients["Alpha"], invoice_id, name, TEMPLATE_BODY, NOW)

    assert [(c.number, c.balance) for c in choices] == [
        ("INV-c1", Money(Decimal("500.00"), "GBP")),
        ("INV-c2", Money(Decimal("500.00"), "EUR")),
    ]
    assert rendered.subject == "Invoice INV-c1 for c1"
    assert "INV-c1: £500.00 due November 4, 2026." in rendered.text
    assert "Sent before: 1" in rendered.text  # the reminder actually sent about it
    assert "Alpha Studio" in rendered.text  # the client's business as sender
    assert rendered.html is None  # a new template with no HTML part goes out as plain text


def test_a_broken_or_hostile_template_is_refused_at_its_line(store: Store) -> None:
    org_id, clients, invoice_id, name = _with_template(store)
    cases = {
        "Hi {{ customer_name }}\n{{ customer.nmae }}\n": ("body.txt", "line 2: "),
        "{{ ''.__class__ }}": ("body.txt", "line 1: "),
        "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}": ("body.txt", "line 1"),
        "{% if %}": ("body.txt", "line 1: "),
    }
    with store.unit_of_work() as uow:
        for source, (part, start) in cases.items():
            with pytest.raises(InvalidInput) as refused:
                render_on_invoice(
                    uow, org_id, clients["Alpha"], invoice_id, name, {**TEMPLATE_BODY, "body.txt": source}, NOW
                )
            assert refused.value.field == part, source
            assert refused.value.user_message.startswith(start), refused.value.user_message


def test_a_template_preview_refuses_an_invoice_that_is_not_the_clients(store: Store) -> None:
    org_id, clients, invoice_id, name = _with_template(store)
    other_org, other_clients, _ = practice(store)
    with store.unit_of_work() as uow:
        with pytest.raises(UnknownRecord):
            render_on_invoice(uow, org_id, clients["Bravo"], invoice_id, name, TEMPLATE_BODY, NOW)  # wrong client
        with pytest.raises(UnknownRecord):
            render_on_invoice(uow, other_org, other_clients["Alpha"], invoice_id, name, TEMPLATE_BODY, NOW)
        with pytest.raises(UnknownRecord):
            render_on_invoice(uow, org_id, clients["Alpha"], 2**40, name, TEMPLATE_BODY, NOW)
        assert open_invoices(uow, other_org, clients["Alpha"]) == []  # another organization's client: nothing
        assert open_invoices(uow, org_id, 2**40) == []
