"""The library service on SQLite and PostgreSQL: versions, whole-library checks, optimistic concurrency,
renames that keep clients and rewrite references, deletes refused while in use, restore, pruning, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library import audit, items
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, PAYMENT_PLAN, TEMPLATE, library_for
from connector.library.templates import builtin_template_body
from connector.storage import Store
from connector.storage.tables import Action, ClientSettings, LibraryItem, LibraryVersion, Organization, PaymentPlan
from tests.support.library import NOW, add_client, add_customer, seeded_org, starter_settings

LATER = NOW + timedelta(hours=1)


def _id(store: Store, org_id: int, kind: str, name: str) -> int:
    with store.unit_of_work() as uow:
        found = next(item.id for item in items.list_items(uow, org_id, kind) if item.name == name)
    return found


def _cadence(fee: str = "monthly_interest", template: str = "firm") -> dict[str, object]:
    return {
        "send_time": "10:00",
        "steps": [
            {"id": "due", "offset": 0, "remind": template},
            {"id": "late", "offset": 10, "remind": {"template": template}, "late_fee": fee},
        ],
    }


def test_the_starter_library_is_listed_by_kind_at_version_one(store: Store) -> None:
    org_id = seeded_org(store)
    with store.unit_of_work() as uow:
        listed = items.list_items(uow, org_id)
        assert {(i.kind, i.name) for i in listed if i.kind != TEMPLATE} == {
            (CADENCE, "standard"),
            (LATE_FEE, "monthly_interest"),
            (LATE_FEE, "uk_statutory"),
            (DISCOUNT, "two_ten"),
            (PAYMENT_PLAN, "monthly"),
        }
        assert {i.name for i in items.list_items(uow, org_id, TEMPLATE)} == {
            "gentle_nudge",
            "due_today",
            "firm",
            "final_notice",
            "installment",
            "discount_offer",
        }
        assert {i.version for i in listed} == {1}
        library = library_for(uow, org_id, starter_settings().rules)
        assert library.seeded
        assert set(library.rules.cadences) == {"standard"}


def test_create_checks_the_whole_library_and_names_the_field(store: Store) -> None:
    org_id = seeded_org(store)
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidInput) as refused:
            items.create_item(uow, org_id, CADENCE, "strict", _cadence(fee="no_such_fee"), actor="u", now=NOW)
        assert refused.value.field == "body.late_fee"
        assert "no_such_fee" in refused.value.user_message
        with pytest.raises(InvalidInput) as unknown_template:
            items.create_item(uow, org_id, CADENCE, "strict", _cadence(template="nope"), actor="u", now=NOW)
        assert unknown_template.value.field == "body.remind"
        with pytest.raises(InvalidInput) as taken:
            items.create_item(uow, org_id, CADENCE, " standard ", _cadence(), actor="u", now=NOW)
        assert taken.value.field == "name"
        for bad in ("two\nlines", "nul\x00", "x" * 101):
            with pytest.raises(InvalidInput) as unprintable:
                items.create_item(uow, org_id, CADENCE, bad, _cadence(), actor="u", now=NOW)
            assert unprintable.value.field == "name"
        with pytest.raises(InvalidInput) as blank:
            items.create_item(uow, org_id, CADENCE, "  ", _cadence(), actor="u", now=NOW)
        assert blank.value.field == "name"
        created = items.create_item(uow, org_id, CADENCE, "strict", _cadence(), actor="user:1", now=NOW)
        uow.commit()
    assert created.version == 1
    with store.unit_of_work() as uow:
        logged = audit.entries(uow, org_id, entity=CADENCE, entity_id=str(created.id))
    assert [(e.change, e.actor, e.before, e.after["name"]) for e in logged] == [("create", "user:1", None, "strict")]


def test_update_makes_a_new_version_and_refuses_a_stale_base(store: Store) -> None:
    org_id = seeded_org(store)
    fee_id = _id(store, org_id, LATE_FEE, "monthly_interest")
    with store.unit_of_work() as uow:
        body = dict(items.get_item(uow, org_id, fee_id).body)
        body["grace_days"] = 10
        updated = items.update_item(uow, org_id, fee_id, body, base_version=1, actor="user:1", now=LATER)
        uow.commit()
    assert updated.version == 2
    assert updated.body["grace_days"] == 10
    with store.unit_of_work() as uow:
        body["grace_days"] = 12
        with pytest.raises(InUse) as stale:
            items.update_item(uow, org_id, fee_id, body, base_version=1, actor="user:2", now=LATER)
        assert "someone else changed" in stale.value.user_message
        assert stale.value.field == "base_version"
        with pytest.raises(InvalidInput) as bad:
            items.update_item(uow, org_id, fee_id, {**body, "kind": "nope"}, base_version=2, actor="u", now=LATER)
        assert bad.value.field.startswith("body")
        assert [v.number for v in items.versions(uow, org_id, fee_id)] == [2, 1]
        logged = audit.entries(uow, org_id, entity=LATE_FEE, entity_id=str(fee_id))
    assert logged[0].change == "update"
    assert logged[0].before is not None
    assert logged[0].before["body"]["grace_days"] == 7
    assert logged[0].after is not None
    assert logged[0].after["body"]["grace_days"] == 10


def test_a_renamed_cadence_keeps_its_id_and_its_clients(store: Store) -> None:
    org_id = seeded_org(store)
    cadence_id = _id(store, org_id, CADENCE, "standard")
    with store.unit_of_work() as uow:
        client = add_client(uow, org_id, "Acme Ltd", cadence_id)
        items.rename_item(uow, org_id, cadence_id, "Standard (2026)", actor="user:1", now=LATER)
        uow.commit()
    with store.unit_of_work() as uow:
        library = library_for(uow, org_id, starter_settings().rules)
        settings_row = uow.session.get(ClientSettings, client)
        assert settings_row is not None
        assert library.cadence_name(settings_row.cadence_id) == "Standard (2026)"
        assert "Standard (2026)" in library.rules.cadences
        assert [v.name for v in items.versions(uow, org_id, cadence_id)] == ["Standard (2026)", "standard"]


def test_renaming_a_policy_or_template_rewrites_who_names_it(store: Store) -> None:
    org_id = seeded_org(store)
    fee_id = _id(store, org_id, LATE_FEE, "monthly_interest")
    template_id = _id(store, org_id, TEMPLATE, "installment")
    firm_id = _id(store, org_id, TEMPLATE, "firm")
    cadence_id = _id(store, org_id, CADENCE, "standard")
    plan_id = _id(store, org_id, PAYMENT_PLAN, "monthly")
    with store.unit_of_work() as uow:
        items.rename_item(uow, org_id, fee_id, "interest_1_5", actor="user:1", now=LATER)
        items.rename_item(uow, org_id, template_id, "plan_installment", actor="user:1", now=LATER)
        items.rename_item(uow, org_id, firm_id, "firm_but_fair", actor="user:1", now=LATER)
        uow.commit()
    with store.unit_of_work() as uow:
        cadence = items.get_item(uow, org_id, cadence_id)
        steps = {step["id"]: step for step in cadence.body["steps"]}
        assert steps["late-14"]["late_fee"] == "interest_1_5"
        assert steps["late-14"]["remind"] == "firm_but_fair"
        assert steps["late-3bd"]["remind"] == "firm_but_fair"
        assert cadence.version == 3  # one new version per rename that touched it
        assert items.get_item(uow, org_id, plan_id).body["template"] == "plan_installment"
        library = library_for(uow, org_id, starter_settings().rules)
        assert "interest_1_5" in library.rules.late_fees
        changes = [(e.entity, e.change) for e in audit.entries(uow, org_id, before_id=None, limit=6)]
    assert (CADENCE, "rename") in changes
    assert (PAYMENT_PLAN, "rename") in changes


def test_deleting_an_in_use_cadence_is_refused_naming_its_clients_and_customers(store: Store) -> None:
    org_id = seeded_org(store)
    cadence_id = _id(store, org_id, CADENCE, "standard")
    with store.unit_of_work() as uow:
        client = add_client(uow, org_id, "Acme Ltd", cadence_id)
        other = add_client(uow, org_id, "Bolt Inc")
        add_customer(uow, other, "Blue Harbor Cafe", cadence_id)
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(InUse) as refused:
        items.delete_item(uow, org_id, cadence_id, actor="user:1", now=LATER)
    message = refused.value.user_message
    assert "Acme Ltd" in message
    assert "Blue Harbor Cafe" in message
    assert "default" in message
    with store.unit_of_work() as uow:
        row = uow.session.get(ClientSettings, client)
        assert row is not None
        row.cadence_id = None
        uow.session.execute(select(Organization).where(Organization.id == org_id)).scalar_one().settings = {}
        uow.commit()
    with store.unit_of_work() as uow:
        with pytest.raises(InUse) as still:
            items.delete_item(uow, org_id, cadence_id, actor="user:1", now=LATER)
        assert "Blue Harbor Cafe" in still.value.user_message
        assert "Acme" not in still.value.user_message


def test_deleting_a_policy_or_template_a_cadence_names_is_refused_and_an_unused_one_goes(store: Store) -> None:
    org_id = seeded_org(store)
    fee_id = _id(store, org_id, LATE_FEE, "monthly_interest")
    statutory_id = _id(store, org_id, LATE_FEE, "uk_statutory")
    installment_id = _id(store, org_id, TEMPLATE, "installment")
    with store.unit_of_work() as uow:
        with pytest.raises(InUse) as fee:
            items.delete_item(uow, org_id, fee_id, actor="user:1", now=LATER)
        assert "cadence 'standard'" in fee.value.user_message
        with pytest.raises(InUse) as template:
            items.delete_item(uow, org_id, installment_id, actor="user:1", now=LATER)
        assert "payment plan 'monthly'" in template.value.user_message
        items.delete_item(uow, org_id, statutory_id, actor="user:1", now=LATER)
        uow.commit()
    with store.unit_of_work() as uow:
        assert "uk_statutory" not in {i.name for i in items.list_items(uow, org_id, LATE_FEE)}
        with pytest.raises(UnknownRecord):
            items.get_item(uow, org_id, statutory_id)
        row = uow.session.get(LibraryItem, statutory_id)
        assert row is not None
        assert row.deleted_at is not None
        (entry,) = audit.entries(uow, org_id, entity=LATE_FEE, entity_id=str(statutory_id), limit=1)
        assert entry.change == "delete"
        assert entry.after is None
        assert entry.before is not None


def test_a_template_that_does_not_render_is_refused_with_part_and_line(store: Store) -> None:
    org_id = seeded_org(store)
    firm_id = _id(store, org_id, TEMPLATE, "firm")
    body = builtin_template_body("firm")
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidInput) as undefined:
            items.update_item(
                uow, org_id, firm_id, {**body, "body.txt": "Hello\n\n{{ foo }}\n"}, base_version=1, actor="u", now=NOW
            )
        assert undefined.value.field == "body.txt"
        assert undefined.value.user_message.startswith("line 3: ")
        assert "'foo' is undefined" in undefined.value.user_message
        with pytest.raises(InvalidInput) as unsafe:
            items.update_item(
                uow,
                org_id,
                firm_id,
                {**body, "subject.txt": "{{ invoice.__class__ }}"},
                base_version=1,
                actor="u",
                now=NOW,
            )
        assert unsafe.value.field == "subject.txt"
        assert unsafe.value.user_message.startswith("line 1: ")
        with pytest.raises(InvalidInput) as missing:
            items.create_item(uow, org_id, TEMPLATE, "short", {"subject.txt": "Hi"}, actor="u", now=NOW)
        assert missing.value.field == "body.txt"
        with pytest.raises(InvalidInput) as bad_name:
            items.create_item(uow, org_id, TEMPLATE, "_partial", body, actor="u", now=NOW)
        assert bad_name.value.field == "name"
        edited = items.update_item(
            uow,
            org_id,
            firm_id,
            {**body, "body.txt": "Dear {{ customer_name }},\n{{ total }} is overdue.\n"},
            base_version=1,
            actor="u",
            now=NOW,
        )
        assert edited.version == 2  # a built-in name may be edited: it is the organization's copy


def test_restore_makes_an_old_body_current_as_a_new_version(store: Store) -> None:
    org_id = seeded_org(store)
    discount_id = _id(store, org_id, DISCOUNT, "two_ten")
    with store.unit_of_work() as uow:
        original = dict(items.get_item(uow, org_id, discount_id).body)
        items.update_item(uow, org_id, discount_id, {**original, "percent": 3}, base_version=1, actor="u", now=NOW)
        restored = items.restore_version(uow, org_id, discount_id, 1, actor="u", now=LATER)
        uow.commit()
        assert restored.version == 3
        assert dict(restored.body) == original
        with pytest.raises(UnknownRecord):
            items.restore_version(uow, org_id, discount_id, 9, actor="u", now=LATER)
        assert audit.entries(uow, org_id, entity=DISCOUNT, limit=1)[0].change == "restore"


def test_prune_keeps_current_versions_and_those_an_action_refers_to(store: Store) -> None:
    org_id = seeded_org(store)
    cadence_id = _id(store, org_id, CADENCE, "standard")
    with store.unit_of_work() as uow:
        body = dict(items.get_item(uow, org_id, cadence_id).body)
        v1 = items.get_item(uow, org_id, cadence_id).version_id
        v2 = items.update_item(
            uow, org_id, cadence_id, {**body, "send_time": "10:00"}, base_version=1, actor="u", now=NOW
        )
        items.update_item(uow, org_id, cadence_id, {**body, "send_time": "11:00"}, base_version=2, actor="u", now=NOW)
        client = add_client(uow, org_id, "Acme Ltd", cadence_id)
        uow.session.add(
            Action(
                key="k1", connection_id=client, kind="send_reminder", scheduled_at=NOW, library_version_id=v2.version_id
            )
        )
        uow.commit()
    with store.unit_of_work() as uow:
        assert items.prune_versions(uow, org_id) == 1
        uow.commit()
    with store.unit_of_work() as uow:
        kept = {v.id for v in uow.session.scalars(select(LibraryVersion).where(LibraryVersion.item_id == cadence_id))}
        assert v1 not in kept
        assert v2.version_id in kept
        assert len(kept) == 2
        assert items.prune_versions(uow, org_id) == 0


def test_another_organizations_items_are_unknown(store: Store) -> None:
    first = seeded_org(store, "First")
    second = seeded_org(store, "Second")
    cadence_id = _id(store, first, CADENCE, "standard")
    with store.unit_of_work() as uow:
        for call in (
            lambda: items.get_item(uow, second, cadence_id),
            lambda: items.update_item(uow, second, cadence_id, {}, base_version=1, actor="u", now=NOW),
            lambda: items.rename_item(uow, second, cadence_id, "x", actor="u", now=NOW),
            lambda: items.delete_item(uow, second, cadence_id, actor="u", now=NOW),
            lambda: items.versions(uow, second, cadence_id),
        ):
            with pytest.raises(UnknownRecord):
                call()


def test_agreed_payment_plans_keep_their_policy_through_a_rename_and_block_its_delete(store: Store) -> None:
    org_id = seeded_org(store)
    plan_policy = _id(store, org_id, PAYMENT_PLAN, "monthly")
    with store.unit_of_work() as uow:
        client = add_client(uow, org_id, "Acme Ltd")
        active = PaymentPlan(connection_id=client, invoice_external_id="INV-7", policy="monthly", state="active")
        ended = PaymentPlan(connection_id=client, invoice_external_id="INV-3", policy="monthly", state="kept")
        uow.session.add_all([active, ended])
        uow.commit()
    with store.unit_of_work() as uow:
        items.rename_item(uow, org_id, plan_policy, "monthly_3", actor="user:1", now=LATER)
        uow.commit()
    with store.unit_of_work() as uow:
        policies = {p.invoice_external_id: p.policy for p in uow.session.scalars(select(PaymentPlan))}
        assert policies == {"INV-7": "monthly_3", "INV-3": "monthly_3"}
        entry = audit.entries(uow, org_id, entity="payment_plan", limit=1)[0]
        assert entry.connection_id == client
        assert (entry.before, entry.after) == ({"policy": "monthly"}, {"policy": "monthly_3"})
        with pytest.raises(InUse) as refused:
            items.delete_item(uow, org_id, plan_policy, actor="user:1", now=LATER)
    assert "INV-7 (Acme Ltd)" in refused.value.user_message
    assert "INV-3" not in refused.value.user_message  # a plan that ended follows nothing any more


def test_a_template_referred_to_nowhere_may_be_deleted(store: Store) -> None:
    org_id = seeded_org(store)
    with store.unit_of_work() as uow:
        spare = items.create_item(uow, org_id, TEMPLATE, "spare", builtin_template_body("firm"), actor="u", now=NOW)
        items.delete_item(uow, org_id, spare.id, actor="u", now=LATER)
        uow.commit()
        assert "spare" not in {i.name for i in items.list_items(uow, org_id, TEMPLATE)}
