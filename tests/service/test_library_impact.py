"""Impact preview of a library change (issue 14), on SQLite and PostgreSQL: what a cadence or policy change does over
the next 14 days to exactly the clients that use it, before anything is saved.

The practice (tests/support/impact.py): Alpha follows "standard", Bravo "gentle", Charlie "gentle" but its customer c1
"standard", which reminds on the due date and 5 days late and charges a flat 25.00 fee 10 days late.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.domain.money import Money
from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, TEMPLATE
from connector.outbox.impact import impact_of_change
from connector.storage import Store
from connector.storage.tables import Action, LibraryVersion
from tests.support.impact import DUE, GENTLE, NOW, STANDARD, STARTER, cadence, practice


def _impact(store: Store, org_id: int, kind: str, item_id: int | None, body: Any, **kwargs: Any) -> Any:
    return impact_of_change(store, org_id, STARTER, kind, item_id, body, NOW, **kwargs)


def test_a_cadence_step_added_shows_its_reminders_for_exactly_the_clients_using_it(store: Store) -> None:
    org_id, _, items = practice(store)
    nudged = cadence(*STANDARD["steps"][:2], {"id": "nudge", "offset": 7, "remind": "firm"}, STANDARD["steps"][2])
    impact = _impact(store, org_id, CADENCE, items["cadence:standard"], nudged)

    by_client = {client.name: client.diff for client in impact.clients}
    assert set(by_client) == {"Alpha", "Charlie"}  # Bravo follows "gentle" only: not looked at, not listed
    assert by_client["Alpha"].reminders_added == 2  # both customers
    assert by_client["Charlie"].reminders_added == 1  # only c1 follows "standard"
    assert (impact.total.reminders_added, impact.total.reminders_removed) == (3, 0)
    assert impact.total.fees == ()
    assert impact.total.fee_change == {}
    added = by_client["Charlie"].reminders[0]
    assert (added.change, added.day, added.customer, added.step) == ("added", DUE + timedelta(days=7), "c1", "nudge")
    assert added.invoices == ("Charlie-c1",)
    assert (impact.kind, impact.change, impact.name, impact.days) == (CADENCE, "update", "standard", 14)


def test_a_late_fee_change_shows_the_changed_amounts_per_currency(store: Store) -> None:
    org_id, _, items = practice(store)
    dearer = {"kind": "flat", "amount": 40, "grace_days": 0, "warning_days": 0}
    impact = _impact(store, org_id, LATE_FEE, items["late_fee:flat"], dearer)

    assert [client.name for client in impact.clients] == ["Alpha", "Charlie"]
    changes = sorted((f.invoice, f.change, f.before, f.after) for f in impact.total.fees)
    assert changes == [
        ("Alpha-c1", "changed", Money.of("25.00", "GBP"), Money.of("40.00", "GBP")),
        ("Alpha-c2", "changed", Money.of("25.00", "EUR"), Money.of("40.00", "EUR")),
        ("Charlie-c1", "changed", Money.of("25.00", "GBP"), Money.of("40.00", "GBP")),
    ]
    assert all(f.day == DUE + timedelta(days=10) and f.step == "fee" for f in impact.total.fees)
    assert impact.total.fees_before == {"EUR": Money.of("25.00", "EUR"), "GBP": Money.of("50.00", "GBP")}
    assert impact.total.fees_after == {"EUR": Money.of("40.00", "EUR"), "GBP": Money.of("80.00", "GBP")}
    assert impact.total.fee_change == {"EUR": Money.of("15.00", "EUR"), "GBP": Money.of("30.00", "GBP")}
    assert impact.total.reminders == ()


def test_deleting_an_unused_policy_shows_nothing(store: Store) -> None:
    org_id, _, items = practice(store)
    impact = _impact(store, org_id, DISCOUNT, items["discount:spare"], None)
    assert impact.change == "delete"
    assert impact.clients == ()
    assert impact.total.unchanged


def test_an_invalid_proposal_is_refused_with_the_field(store: Store) -> None:
    org_id, _, items = practice(store)
    broken = cadence({"id": "due", "offset": "soon", "remind": "due_today"})
    with pytest.raises(InvalidInput) as error:
        _impact(store, org_id, CADENCE, items["cadence:standard"], broken)
    assert error.value.field == "body.offset"
    assert "offset" in str(error.value)
    with pytest.raises(InvalidInput) as missing:  # deleting a fee policy a cadence still charges
        _impact(store, org_id, LATE_FEE, items["late_fee:flat"], None)
    assert missing.value.field.startswith("body")
    assert "flat" in str(missing.value)


def test_what_cannot_be_previewed_is_refused_naming_the_field(store: Store) -> None:
    org_id, _, items = practice(store)
    with pytest.raises(InUse) as in_use:
        _impact(store, org_id, CADENCE, items["cadence:standard"], None)
    assert (in_use.value.field, "Alpha, Charlie" in str(in_use.value)) == ("item_id", True)
    with pytest.raises(UnknownRecord) as unknown:
        _impact(store, org_id, CADENCE, items["late_fee:flat"], GENTLE)  # an id of another kind
    assert unknown.value.field == "item_id"
    with pytest.raises(InvalidInput) as kind:
        _impact(store, org_id, TEMPLATE, None, {"subject.txt": "Hi"}, name="hello")
    assert kind.value.field == "kind"
    with pytest.raises(InvalidInput) as taken:
        _impact(store, org_id, CADENCE, None, GENTLE, name="gentle")
    assert taken.value.field == "name"
    with pytest.raises(InvalidInput) as days:
        _impact(store, org_id, CADENCE, items["cadence:gentle"], GENTLE, days=0)
    assert days.value.field == "days"


def test_a_new_cadence_nobody_follows_changes_nothing_and_a_preview_writes_nothing(store: Store) -> None:
    org_id, _, items = practice(store)
    impact = _impact(store, org_id, CADENCE, None, GENTLE, name="brand new")
    assert (impact.change, impact.item_id, impact.clients) == ("create", None, ())
    again = _impact(store, org_id, LATE_FEE, items["late_fee:flat"], {"kind": "flat", "amount": 30})
    assert again == _impact(store, org_id, LATE_FEE, items["late_fee:flat"], {"kind": "flat", "amount": 30})
    with store.unit_of_work() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Action)) == 0
        assert uow.session.scalar(select(func.count()).select_from(LibraryVersion)) == len(items)


def test_a_client_limited_caller_sees_only_its_clients(store: Store) -> None:
    org_id, clients, items = practice(store)
    nudged = cadence(*STANDARD["steps"][:2], {"id": "nudge", "offset": 7, "remind": "firm"}, STANDARD["steps"][2])
    impact = _impact(store, org_id, CADENCE, items["cadence:standard"], nudged, connection_ids={clients["Charlie"]})
    assert [client.name for client in impact.clients] == ["Charlie"]
    assert impact.total.reminders_added == 1


def test_a_renamed_fee_policy_keeps_its_cadences_and_changes_nothing(store: Store) -> None:
    org_id, _, items = practice(store)
    same = {"kind": "flat", "amount": 25, "grace_days": 0, "warning_days": 0}
    impact = _impact(store, org_id, LATE_FEE, items["late_fee:flat"], same, name="flat fee")
    assert (impact.change, impact.name) == ("update", "flat fee")
    assert [client.name for client in impact.clients] == ["Alpha", "Charlie"]  # they use it before and after
    assert all(client.diff.unchanged for client in impact.clients)
    assert impact.total.fees_before == impact.total.fees_after
