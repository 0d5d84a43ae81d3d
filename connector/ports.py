"""The ports: what the core needs from providers, storage, mail and the clock (docs/design.md "The provider port").

Adapters implement these Protocols; services take them as parameters. Nothing here does IO.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from connector.domain.model import (
    ChangeNotice,
    ConnectionInfo,
    CustomerSnapshot,
    InvoiceSnapshot,
    PaymentKind,
    PaymentSnapshot,
)
from connector.domain.money import Money


@dataclass(frozen=True, slots=True)
class TokenSet:
    """OAuth tokens of one connection. Its repr and str never show the secrets."""

    access_token: str
    refresh_token: str
    expires_at: datetime  # aware UTC: when the access token dies
    refresh_expires_at: datetime | None = None  # aware UTC, where the provider says
    scope: tuple[str, ...] = ()
    id_token: str = ""
    token_type: str = "Bearer"

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token=<redacted>, refresh_token=<redacted>, "
            f"expires_at={self.expires_at.isoformat()}, scope={self.scope!r})"
        )

    __str__ = __repr__

    def expires_within(self, seconds: float, now: datetime) -> bool:
        """True when the access token dies within `seconds` of `now`."""
        return (self.expires_at - now).total_seconds() <= seconds

    @classmethod
    def from_response(cls, body: Mapping[str, Any], now: datetime) -> TokenSet:
        """Tokens from an OAuth token-endpoint JSON body (`expires_in` seconds from `now`)."""
        from datetime import timedelta

        refresh_in = body.get("x_refresh_token_expires_in") or body.get("refresh_token_expires_in")
        scope = body.get("scope") or ()
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token", "")),
            expires_at=now.astimezone(UTC) + timedelta(seconds=int(body.get("expires_in", 3600))),
            refresh_expires_at=(now.astimezone(UTC) + timedelta(seconds=int(refresh_in))) if refresh_in else None,
            scope=tuple(scope.split()) if isinstance(scope, str) else tuple(scope),
            id_token=str(body.get("id_token") or ""),
            token_type=str(body.get("token_type") or "Bearer"),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in at a provider, from a verified OpenID Connect ID token."""

    subject: str  # the provider's stable user id (`sub`)
    email: str = ""
    name: str = ""
    # The provider vouches that the user controls `email` (OIDC `email_verified`); only then may it link accounts.
    email_verified: bool = False


class TokenSource(Protocol):
    """Gives an adapter a valid access token for its connection; owns refresh and its single-flight."""

    def current(self) -> TokenSet:
        """Tokens whose access token is valid for at least a minute (refreshing first if needed)."""
        ...

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        """After a 401 with `rejected_access_token`: refresh once (unless another caller already did)."""
        ...


@dataclass(frozen=True)
class ProviderSettings:
    """One provider's block of the config: app credentials, endpoint overrides, write-back options.

    Endpoint overrides exist so the local emulators can stand in for the real hosts. `options`
    holds the provider-specific keys (e.g. QuickBooks' late-fee item and income account).
    """

    key: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    webhook_key: str = field(default="", repr=False)
    environment: str = "production"  # QuickBooks: production | sandbox | a discovery-document URL
    api_base: str = ""  # e.g. http://127.0.0.1:PORT/v3 or .../api.xro/2.0 ("" = the provider's real host)
    identity_base: str = ""  # Xero identity / connections host, QuickBooks discovery base
    scopes: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A provider record that could not be mapped; the rest of its page still commits."""

    external_id: str
    field: str
    reason: str


@dataclass(frozen=True)
class Page:
    """One page of changed invoices (and the customers and money objects they name), with the cursor after it."""

    invoices: list[InvoiceSnapshot]
    customers: list[CustomerSnapshot]
    next_cursor: str | None
    quarantined: list[Quarantined] = field(default_factory=list)
    calls: int = 1
    full: bool = False  # part of a full reconcile: invoices absent from it are no longer open
    # The money objects this page saw, each with its complete current set of snapshots ([] = none left:
    # sync deletes that object's stored rows), keyed by (kind, the object's external id).
    payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenCredits:
    """Every money object with credit still unapplied (complete: an object absent has none left) and the calls made."""

    payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]]
    quarantined: list[Quarantined] = field(default_factory=list)
    calls: int = 1


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a ledger write produced: the provider's id of the created/updated object."""

    external_ref: str
    replayed: bool = False  # the provider answered from its idempotency store / found it by reference


@runtime_checkable
class AccountingAdapter(Protocol):
    """One connection's view of its ledger. Every method raises only connector.errors.ProviderError."""

    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        """Open and recently closed invoices changed since `cursor` (None: full reconcile of open ones).

        `first_sync`: no sweep of this connection ever completed, so money applied before now (payments on
        partly paid invoices) is read too; a later reconcile relies on the sweeps having followed it.
        An adapter whose reconcile also reads the open credits sets `reconcile_reads_open_credits = True`.
        """
        ...

    def open_credits(self) -> OpenCredits:
        """Every overpayment, prepayment, unapplied payment and credit note with credit left, read now.

        Read before acting (connector.sync.credits), not on every poll: it only matters when something would go out."""
        ...

    def get_invoice(self, external_id: str) -> InvoiceSnapshot | None:
        """The invoice as it is now (None when deleted): the just-in-time check before acting."""
        ...

    def customer_contacts(self, external_id: str) -> CustomerSnapshot:
        """A customer's name and reminder addresses."""
        ...

    def unapplied_credit(self, customer_external_id: str) -> Money | None:
        """Money the customer has paid but not applied (None: none, or not in the invoice currency)."""
        ...

    def add_note(self, invoice: InvoiceSnapshot, text: str, key: str) -> WriteResult:
        """Append an internal note to the invoice in the ledger, exactly once per `key`."""
        ...

    def create_fee_invoice(self, invoice: InvoiceSnapshot, amount: Money, description: str, key: str) -> WriteResult:
        """A new invoice for the late fee, referencing `invoice`; found by reference instead of re-created."""
        ...

    def create_credit(self, invoice: InvoiceSnapshot, amount: Money, reason: str, key: str) -> WriteResult:
        """A credit (QuickBooks CreditMemo / Xero CreditNote) applied to `invoice`."""
        ...

    def void_fee_invoice(self, external_ref: str, key: str) -> WriteResult:
        """Void a fee invoice Nudge created earlier."""
        ...

    def invoice_pdf(self, invoice: InvoiceSnapshot) -> bytes | None:
        """The invoice as PDF, where the provider renders one."""
        ...

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        """A link where the customer can view and pay the invoice, where the provider has one."""
        ...

    def send_via_provider(self, invoice: InvoiceSnapshot, to: str, key: str) -> WriteResult:
        """Ask the provider to email the invoice itself."""
        ...


@dataclass(frozen=True)
class ProviderSpec:
    """What the registry knows of one provider; `providers.<name>.PROVIDER` is one of these."""

    key: str
    display_name: str
    authorization_url: Callable[[ProviderSettings, str, str], str]  # (settings, state, code_challenge)
    exchange_code: Callable[[ProviderSettings, Mapping[str, str], str, datetime], TokenSet]
    refresh: Callable[[ProviderSettings, TokenSet, datetime], TokenSet]
    revoke: Callable[[ProviderSettings, TokenSet], None]
    connect: Callable[[ProviderSettings, Mapping[str, str], TokenSet], list[ConnectionInfo]]
    verify_webhook: Callable[[bytes, str, str], bool]
    parse_webhook: Callable[[bytes], list[ChangeNotice]]
    adapter: Callable[[str, TokenSource, ProviderSettings], AccountingAdapter]  # (tenant id, tokens, settings)
    webhook_signature_header: str = ""
    supports_pkce: bool = False
    # (settings, tokens, nonce, now) -> the verified identity in the tokens' ID token (OpenID Connect)
    identify: Callable[..., Identity] | None = None
    # Whose account people sign in with, as the provider's button wording names it ("Sign in with Intuit" for
    # QuickBooks); "" = display_name
    identity_name: str = ""
    # (settings, tokens, tenant ids) -> the tenants whose access ended: ends the grant's access to just those
    # files (Xero: DELETE /connections/{id}), where revoking would end every file of the user (None: revoke)
    disconnect_tenants: Callable[[ProviderSettings, TokenSet, Collection[str]], list[str]] | None = None
    # (settings, tenant id, record kind "invoice" | "credit", the record's id) -> the page where a person opens that
    # record in the provider's own web app, or None (the ledger links on Nudge's pages; None: no such links)
    ledger_url: Callable[[ProviderSettings, str, str, str], str | None] | None = None


class Clock(Protocol):
    """Where services read the time; tests and the demo move it."""

    def now(self) -> datetime:
        """Current instant, aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        return datetime.now(UTC)
