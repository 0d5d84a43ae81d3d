"""The provider contract (docs/design.md "The provider port"), run for every harness in tests/contract."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.model import InvoiceSnapshot, InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.errors import AuthError, StorageError
from connector.ports import AccountingAdapter, ProviderSpec
from connector.storage import Store
from connector.storage.tables import Invoice
from connector.sync.invoices import sync_connection
from tests.support.tokens import MemoryTokenSource


class Tenant:
    def __init__(self, harness: Any, provider: ProviderSpec, invoices: int = 3) -> None:
        self.harness = harness
        self.provider = provider
        self.settings = harness.settings()
        self.id = harness.new_tenant(f"Contract {harness.key}")
        self.invoice_ids = harness.seed_invoices(self.id, invoices)
        self.tokens = MemoryTokenSource(self.settings, harness.tokens(self.id), provider.refresh)

    def adapter(self) -> AccountingAdapter:
        return self.provider.adapter(self.id, self.tokens, self.settings)

    def invoice(self, index: int = 0) -> InvoiceSnapshot:
        inv = self.adapter().get_invoice(self.invoice_ids[index])
        assert inv is not None
        return inv


@pytest.fixture
def tenant(provider_harness: Any, provider: ProviderSpec) -> Tenant:
    return Tenant(provider_harness, provider)


def test_connect(provider_harness: Any, provider: ProviderSpec) -> None:
    settings = provider_harness.settings()
    tenant_id = provider_harness.new_tenant("Connect Co")
    # PKCE (RFC 7636, S256): the challenge is derived from the verifier, as connector.connections.connect does.
    verifier = "contract-verifier-" + "v" * 40
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    url = provider.authorization_url(settings, "state-xyz", challenge)
    assert "state-xyz" in url
    assert url.startswith("http://127.0.0.1:")
    params = provider_harness.authorize(tenant_id, "state-xyz", challenge)
    assert params["state"] == "state-xyz"
    tokens = provider.exchange_code(settings, params, verifier if provider.supports_pkce else "", datetime.now(UTC))
    assert tokens.access_token
    assert tokens.refresh_token
    assert tokens.expires_at > datetime.now(UTC)
    assert tokens.access_token not in repr(tokens)
    infos = provider.connect(settings, params, tokens)
    assert tenant_id in [info.tenant_id for info in infos]
    assert all(info.provider == provider.key and info.name for info in infos)


def test_refresh_rotates_tokens(tenant: Tenant) -> None:
    before = tenant.tokens.tokens
    after = tenant.provider.refresh(tenant.settings, before, datetime.now(UTC))
    assert after.access_token != before.access_token
    assert after.refresh_token
    assert tenant.adapter().get_invoice(tenant.invoice_ids[0]) is not None


def test_revoke_kills_the_grant(tenant: Tenant) -> None:
    tenant.provider.revoke(tenant.settings, tenant.tokens.tokens)
    with pytest.raises(AuthError):
        tenant.provider.refresh(tenant.settings, tenant.tokens.tokens, datetime.now(UTC))


def test_expired_access_token_is_refreshed_once_and_retried(tenant: Tenant) -> None:
    adapter = tenant.adapter()
    assert adapter.get_invoice(tenant.invoice_ids[0]) is not None
    tenant.harness.expire_access_token(tenant.id)
    assert adapter.get_invoice(tenant.invoice_ids[0]) is not None
    assert tenant.tokens.refreshes == 1


def test_sync_full_then_incremental(tenant: Tenant) -> None:
    adapter = tenant.adapter()
    pages = list(adapter.changed_invoices(None))
    found = {inv.external_id: inv for page in pages for inv in page.invoices}
    assert set(found) == set(tenant.invoice_ids)
    assert all(inv.status is InvoiceStatus.OPEN and inv.balance.is_positive() for inv in found.values())
    assert any(c.emails for page in pages for c in page.customers)
    cursor = pages[-1].next_cursor
    assert cursor

    quiet = list(adapter.changed_invoices(cursor))
    assert sum(len(p.invoices) for p in quiet) == 0
    cursor = quiet[-1].next_cursor or cursor

    tenant.harness.record_payment(tenant.id, tenant.invoice_ids[0], None)
    tenant.harness.touch_invoice(tenant.id, tenant.invoice_ids[1])
    changed = {inv.external_id: inv for page in adapter.changed_invoices(cursor) for inv in page.invoices}
    assert changed[tenant.invoice_ids[0]].status is InvoiceStatus.PAID
    assert changed[tenant.invoice_ids[1]].status is InvoiceStatus.OPEN
    assert tenant.invoice_ids[2] not in changed


def test_note_written_once(tenant: Tenant) -> None:
    inv = tenant.invoice()
    adapter = tenant.adapter()
    adapter.add_note(inv, "Contract note: reminder 1 sent", "contract-note-1")
    adapter.add_note(inv, "Contract note: reminder 1 sent", "contract-note-1")
    assert tenant.harness.note_count(tenant.id, inv.external_id, "Contract note: reminder 1 sent") == 1


def test_fee_invoice(tenant: Tenant) -> None:
    inv = tenant.invoice()
    result = tenant.adapter().create_fee_invoice(inv, Money.of("12.50", inv.currency), "Late fee", "contract-fee-1")
    fee = tenant.adapter().get_invoice(result.external_ref)
    assert fee is not None
    assert fee.total.amount == Decimal("12.50")
    assert fee.customer_external_id == inv.customer_external_id
    assert fee.status is InvoiceStatus.OPEN
    assert tenant.harness.fee_invoices(tenant.id) == 1


def test_credit_applied(tenant: Tenant) -> None:
    inv = tenant.invoice()
    tenant.adapter().create_credit(inv, Money.of("10.00", inv.currency), "Early payment discount", "contract-cr-1")
    after = tenant.adapter().get_invoice(inv.external_id)
    assert after is not None
    assert after.balance.amount == inv.balance.amount - Decimal("10.00")
    assert tenant.harness.credits(tenant.id) == 1


def test_idempotent_replay_of_every_write(tenant: Tenant) -> None:
    inv = tenant.invoice()
    other = tenant.invoice(1)

    def run() -> list[str]:
        adapter = tenant.adapter()
        fee = adapter.create_fee_invoice(other, Money.of("5.00", inv.currency), "Late fee", "replay-fee-void")
        return [
            adapter.add_note(inv, "replayed note", "replay-note").external_ref,
            adapter.create_fee_invoice(inv, Money.of("7.00", inv.currency), "Late fee", "replay-fee").external_ref,
            adapter.create_credit(inv, Money.of("3.00", inv.currency), "Discount", "replay-credit").external_ref,
            adapter.void_fee_invoice(fee.external_ref, "replay-void").external_ref,
        ]

    first = run()
    counts = (tenant.harness.fee_invoices(tenant.id), tenant.harness.credits(tenant.id))
    balance = tenant.adapter().get_invoice(inv.external_id)
    assert run() == first
    assert (tenant.harness.fee_invoices(tenant.id), tenant.harness.credits(tenant.id)) == counts == (2, 1)
    assert tenant.harness.note_count(tenant.id, inv.external_id, "replayed note") == 1
    assert tenant.adapter().get_invoice(inv.external_id) == balance


def test_crash_before_local_commit_then_retry_leaves_one_fee(tenant: Tenant) -> None:
    inv = tenant.invoice()

    def attempt(crash: bool) -> str:
        ref = tenant.adapter().create_fee_invoice(inv, Money.of("9.99", inv.currency), "Late fee", "crash-fee")
        if crash:
            raise StorageError("crashed before commit")
        return ref.external_ref

    with pytest.raises(StorageError):
        attempt(crash=True)
    tenant.harness.forget_idempotency(tenant.id)
    attempt(crash=False)
    assert tenant.harness.fee_invoices(tenant.id) == 1


def test_webhook_verification_and_parse(tenant: Tenant) -> None:
    body = tenant.harness.webhook_body(tenant.id, tenant.invoice_ids[0])
    signature, key = tenant.harness.sign_webhook(body)
    assert tenant.provider.verify_webhook(body, signature, key)
    tampered = body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
    assert not tenant.provider.verify_webhook(tampered, signature, key)
    assert not tenant.provider.verify_webhook(body, signature, key + "x")
    notices = tenant.provider.parse_webhook(body)
    assert any(
        n.tenant_id == tenant.id
        and n.entity_id == tenant.invoice_ids[0]
        and n.entity == "invoice"
        and n.operation == "update"
        for n in notices
    )


# -- payments and credits (issue 11): each money object on the next sync's page with its complete current set --
QUIET_SYNC_CALLS = 1  # an incremental sync that finds nothing changed is one call on every provider
MONEY_SYNC_CALLS = {"quickbooks": 1}  # one CDC call for invoices, customers, payments and credit memos


class MoneySync:
    """A tenant synced once (full reconcile), then the money movements the next incremental sync sees."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.adapter = tenant.adapter()
        pages = list(self.adapter.changed_invoices(None))
        cursor = pages[-1].next_cursor
        assert cursor
        self.cursor = cursor
        self.on = datetime.now(UTC).date() - timedelta(days=3)

    def invoice(self, index: int) -> InvoiceSnapshot:
        inv = self.adapter.get_invoice(self.tenant.invoice_ids[index])
        assert inv is not None
        return inv

    def quiet(self) -> None:
        """Nothing changed: one call, no money on the page."""
        before = self.tenant.harness.data_calls(self.tenant.id)
        pages = list(self.adapter.changed_invoices(self.cursor))
        assert self.tenant.harness.data_calls(self.tenant.id) - before == QUIET_SYNC_CALLS
        assert [p.payments for p in pages] == [{}]
        self.cursor = pages[-1].next_cursor or self.cursor

    def sync(self) -> tuple[dict[tuple[PaymentKind, str], list[PaymentSnapshot]], dict[str, InvoiceSnapshot]]:
        """(money objects, invoices) the next incremental sync carries; its calls are counted as reported."""
        before = self.tenant.harness.data_calls(self.tenant.id)
        pages = list(self.adapter.changed_invoices(self.cursor))
        calls = self.tenant.harness.data_calls(self.tenant.id) - before
        assert sum(p.calls for p in pages) == calls
        expected = MONEY_SYNC_CALLS.get(self.tenant.harness.key)
        if expected is not None:
            assert calls == expected
        assert not any(p.quarantined for p in pages)
        self.cursor = pages[-1].next_cursor or self.cursor
        money = {key: value for page in pages for key, value in page.payments.items()}
        invoices = {inv.external_id: inv for page in pages for inv in page.invoices}
        return money, invoices


@pytest.fixture
def money(tenant: Tenant) -> MoneySync:
    return MoneySync(tenant)


def test_payment_synced_with_its_invoice_date_and_amount(money: MoneySync) -> None:
    inv = money.invoice(0)
    money.quiet()
    payment_id = money.tenant.harness.record_payment(money.tenant.id, inv.external_id, None, money.on)
    found, invoices = money.sync()
    [snapshot] = found[(PaymentKind.PAYMENT, payment_id)]
    assert snapshot.external_id == payment_id
    assert (snapshot.invoice_external_id, snapshot.customer_external_id) == (inv.external_id, inv.customer_external_id)
    assert snapshot.amount == inv.balance
    assert snapshot.paid_on == money.on
    assert not snapshot.voided
    assert not snapshot.unapplied
    assert invoices[inv.external_id].status is InvoiceStatus.PAID


def test_partial_payment_synced(money: MoneySync) -> None:
    inv = money.invoice(1)
    part = Money.of("40.00", inv.currency)
    payment_id = money.tenant.harness.record_payment(money.tenant.id, inv.external_id, part.amount, money.on)
    found, invoices = money.sync()
    [snapshot] = found[(PaymentKind.PAYMENT, payment_id)]
    assert (snapshot.invoice_external_id, snapshot.amount, snapshot.paid_on) == (inv.external_id, part, money.on)
    assert invoices[inv.external_id].balance == inv.balance - part
    assert invoices[inv.external_id].status is InvoiceStatus.OPEN


def test_credit_applied_synced(money: MoneySync) -> None:
    inv = money.invoice(0)
    amount = Money.of("15.00", inv.currency)
    credit_id = money.tenant.harness.record_credit(money.tenant.id, inv.external_id, amount.amount, money.on)
    found, invoices = money.sync()
    applied = [s for s in found[(PaymentKind.CREDIT, credit_id)] if not s.voided]
    assert [(s.invoice_external_id, s.amount, s.paid_on) for s in applied] == [(inv.external_id, amount, money.on)]
    assert invoices[inv.external_id].balance == inv.balance - amount
    # No money object on the page pays that invoice in cash: the credit is not counted as a payment too.
    cash = [s for key, snaps in found.items() if key[0] is PaymentKind.PAYMENT for s in snaps]
    assert not [s for s in cash if s.invoice_external_id == inv.external_id and not s.voided]


def test_overpayment_left_unapplied(money: MoneySync) -> None:
    """Unapplied money is an open credit: the open-credit listing reads it (and QuickBooks' reconcile batch too,
    at no extra call), as an unapplied snapshot of its customer."""
    customer = money.invoice(0).customer_external_id
    currency = money.invoice(0).currency
    over_id = money.tenant.harness.record_overpayment(money.tenant.id, customer, Decimal("25.00"), money.on)
    adapter = money.tenant.adapter()
    credits = adapter.open_credits()
    assert credits.calls == (1 if money.tenant.provider.key == "quickbooks" else 3)
    found = credits.payments
    pages = list(adapter.changed_invoices(None))
    in_reconcile = {key for page in pages for key in page.payments if key[1] == over_id}
    assert bool(in_reconcile) is getattr(adapter, "reconcile_reads_open_credits", False)
    [(kind, _)] = [key for key in found if key[1] == over_id]
    assert kind in (PaymentKind.PAYMENT, PaymentKind.OVERPAYMENT)
    [snapshot] = found[(kind, over_id)]
    assert (snapshot.invoice_external_id, snapshot.customer_external_id) == ("", customer)
    assert snapshot.unapplied
    assert (snapshot.amount, snapshot.paid_on) == (Money.of("25.00", currency), money.on)


def test_voided_payment_leaves_nothing_to_count(money: MoneySync) -> None:
    """A payment voided or deleted in the ledger: the next sync carries it with [] or voided snapshots, and
    its invoice owes the money again."""
    inv = money.invoice(2)
    payment_id = money.tenant.harness.record_payment(money.tenant.id, inv.external_id, None, money.on)
    found, _ = money.sync()
    assert [s.voided for s in found[(PaymentKind.PAYMENT, payment_id)]] == [False]
    money.tenant.harness.void_payment(money.tenant.id, payment_id)
    found, invoices = money.sync()
    assert all(s.voided for s in found[(PaymentKind.PAYMENT, payment_id)])
    assert invoices[inv.external_id].balance == inv.balance
    assert invoices[inv.external_id].status is InvoiceStatus.OPEN


# -- issue 12: the ledger's own country and zone; Nudge's marker on its fee invoices; ledger notes --------------
CONNECT_CALLS = {"quickbooks": 2, "xero": 1}  # CompanyInfo + Preferences; one GET /Organisation per organisation


@pytest.mark.parametrize(
    ("country", "subdivision", "time_zone"),
    [("AU", "NSW", "Australia/Sydney"), ("GB", "", "Europe/London"), ("US", "NY", "America/New_York")],
)
def test_connect_names_the_ledgers_country_subdivision_and_zone(
    provider_harness: Any, provider: ProviderSpec, country: str, subdivision: str, time_zone: str
) -> None:
    settings = provider_harness.settings()
    tenant_id = provider_harness.new_located_tenant("Located Co", country, subdivision, time_zone)
    params = provider_harness.authorize(tenant_id, "state-region")
    tokens = provider.exchange_code(settings, params, "", datetime.now(UTC))
    before = provider_harness.data_calls(tenant_id)
    [info] = [info for info in provider.connect(settings, params, tokens) if info.tenant_id == tenant_id]
    assert provider_harness.data_calls(tenant_id) - before == CONNECT_CALLS[provider.key]
    assert {name: info.extra[name] for name in ("country", "subdivision", "time_zone")} == {
        "country": country,
        "subdivision": subdivision,
        "time_zone": time_zone,
    }


def _synced(store: Store, tenant: Tenant, connection_id: int) -> dict[str, Invoice]:
    sync_connection(store, tenant.adapter(), connection_id, lambda: datetime.now(UTC))
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(select(Invoice).where(Invoice.connection_id == connection_id)).all()
        uow.session.expunge_all()
        return {row.external_id: row for row in rows}


def test_fee_invoices_carry_nudges_marker_through_the_sync(tenant: Tenant, store: Store) -> None:
    """Any Nudge syncing this ledger knows a fee invoice Nudge wrote (on insert and on update); an ordinary
    invoice whose memo merely mentions nudge, or that carries Nudge's notes, is not one."""
    with store.unit_of_work() as uow:
        org = uow.organizations.add("Another Nudge organization")
        connection_id = uow.connections.add(org.id, tenant.harness.key, tenant.id, "Contract books").id
        uow.commit()
    inv, mentioned, noted = tenant.invoice(0), tenant.invoice_ids[1], tenant.invoice(2)
    fee = tenant.adapter().create_fee_invoice(inv, Money.of("6.00", inv.currency), "Late fee", "marker-fee")
    tenant.harness.annotate_invoice(tenant.id, mentioned, "Please nudge them again next week [nudge]")
    tenant.adapter().add_note(noted, "Reminder sent by Nudge", "marker-note")

    rows = _synced(store, tenant, connection_id)  # first sync: a full reconcile, every row inserted
    assert {ident for ident, row in rows.items() if row.created_by_nudge} == {fee.external_ref}
    assert set(rows) == {fee.external_ref, *tenant.invoice_ids}

    tenant.harness.record_payment(tenant.id, fee.external_ref, Decimal("1.00"))  # the fee's row is updated
    tenant.harness.touch_invoice(tenant.id, mentioned)
    rows = _synced(store, tenant, connection_id)
    assert rows[fee.external_ref].balance == Decimal("5.00")
    assert rows[fee.external_ref].created_by_nudge
    assert not rows[mentioned].created_by_nudge
    assert not rows[noted.external_id].created_by_nudge


def test_note_replayed_after_the_provider_forgot_the_key_is_written_once(tenant: Tenant) -> None:
    inv = tenant.invoice()
    first = tenant.adapter().add_note(inv, "Late fee charged: 12.00", "replayed-note-key")
    tenant.harness.forget_idempotency(tenant.id)  # beyond the provider's replay window, or another worker
    again = tenant.adapter().add_note(inv, "Late fee charged: 12.00", "replayed-note-key")
    assert (first.replayed, again.replayed) == (False, True)
    assert tenant.harness.note_count(tenant.id, inv.external_id, "Late fee charged: 12.00") == 1
    tenant.adapter().add_note(inv, "Late fee charged: 12.00", "another-note-key")  # another key: another note
    assert tenant.harness.note_count(tenant.id, inv.external_id, "Late fee charged: 12.00") == 2


def test_a_note_beyond_the_ledgers_limit_is_cut_not_refused(tenant: Tenant) -> None:
    inv = tenant.invoice()
    text = "Credit of 10.00 applied for early payment. " + "Recorded by Nudge for the audit trail. " * 300
    result = tenant.adapter().add_note(inv, text, "long-note-key")
    assert not result.replayed
    assert tenant.harness.note_count(tenant.id, inv.external_id, "Credit of 10.00 applied for early payment.") == 1
    assert tenant.adapter().add_note(inv, text, "long-note-key").replayed
