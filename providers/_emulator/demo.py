"""`nudge demo`: the whole job against the bundled emulators, 60 simulated days in a few minutes.

Two realistic companies (one per provider) are seeded: a QuickBooks company in New York (US-NY holidays,
America/New_York) and a Xero organisation in London (GB holidays, Europe/London). The demo practice signs up
(its library seeded from the starter cadences, as sign-up does), connects both through the real OAuth flows
(Nudge takes each connection's zone and holiday calendar from the ledger itself) and picks each client's
cadence in its settings. A first sync brings the customers in; the accountant sets their details through the
same services the customer page uses (zones, locales, two disputes with their reasons, and a customer with an
older debt put on the library's `long_overdue` cadence). A new connection starts in its onboarding review: the
first day's turns sync and plan, nothing goes out; at that day's last tick the owner reads each review (what
would go out, what is held) and approves it as `nudge approve --all` does (connector.review), and chasing
starts. Then the clocks of Nudge and the emulators advance six hours at a time (so every customer's send
window, from Sydney to New York, gets a worker tick). Call tasks and hand-overs become people's tasks
(connector.tasks): on weekdays the demo's accountant makes every other call a day after it fell due and records
what was said (a ledger note, as the call step asks); the rest stay open. Each day prints what was sent, noted,
charged and collected; the end prints a summary, then how to browse the result.

So that the web app opens on a world with something in every corner of its inbox (the browser tests' 21-day run
included), three things happen through the product's own paths (`_Story`):
- a customer with an older debt (two invoices from the summer, in the last company; it does not pay during the
  demo) is chased with the `long_overdue` cadence (a firm reminder at once, a call a week later, a final notice
  handing the debt over to a person after two weeks), so hand-over tasks are open from the fifteenth day on,
  a week before the standard cadence's first;
- the first company's ledger holds an invoice in a currency that no longer exists (Lithuanian litas, an old
  import): the sync cannot map it and quarantines it (`sync.quarantined`, naming the field and why);
- for the last two working days of the run (its own calendar's: weekdays, no public holidays) the first
  company's owner asks to approve everything before it goes out (`update_client_settings(approval="all")`, as the
  settings screen does): what falls due from then on waits for a person's approval.
Without `--start` the simulated days end yesterday, so the web app, which reads the real clock, looks at the
world the morning after the demo's last day (as the browser tests do).

Customers pay on a behaviour model, deterministic from the seed and the invoice number (`_habit`): some
pay early for the discount the courtesy reminder offers, some after the first reminder, some only after
a firm one, some after a late fee but with the money dated before it (a bank lag), some agree a payment
plan at the firm reminder (one per company breaks it), some never pay. Every paying customer also has
an own date on which it pays anyway. The same seeded world without Nudge is a pure simulation
(`_without_nudge`): no reminders, so each invoice is paid on that own date or never; its DSO and amount
collected are reported next to the real run's (collected with Nudge: the home-currency payments the
emulated ledgers received during the run). `demo-out/summary.json` holds the counts, each read from the
store (done actions, synced payment and plan rows, tasks, actions awaiting approval, quarantined invoices),
the emails the customers received or the emulated ledgers, never from the behaviour model; the careful-by-default
numbers (fees without a warning a week before, fees on the first day, final notices as a first message, reminders
on a public holiday) are computed from what was sent and charged by providers._emulator.demo_truth.
Provider specifics come from each emulator's kit (providers._emulator.kit, found through the
`nudge.emulators` entry points).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import random
import re
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, inspect, select, text

from connector.accounts.users import create_organization, create_user
from connector.bootstrap import Services, build
from connector.config import load_settings
from connector.connections.connect import begin_connect, complete_connect
from connector.domain.calendar import HolidayCalendar
from connector.domain.dso import DEFAULT_PERIOD_DAYS, days_sales_outstanding, sales_in_period
from connector.domain.handoff import safe_name
from connector.domain.model import Role
from connector.library.items import list_items
from connector.library.overrides import update_customer_overrides
from connector.library.resolve import CADENCE
from connector.library.settings import InstallDefaults, update_client_settings
from connector.review import Review, approve, review_of
from connector.storage.tables import Action, Activity, Customer, HandoffPack, Installment, Invoice, PaymentPlan
from connector.sync.invoices import sync_connection
from connector.tasks.service import CALL, complete_task, list_tasks
from connector.vault.keyring import generate_key
from connector.worker.scheduler import Lease, Worker
from connector.worker.turn import adapter_for, reconcile_every, run_connection
from providers._emulator.demo_customer_page import CustomerPageScenes
from providers._emulator.demo_customer_page import summary_lines as page_lines
from providers._emulator.demo_truth import CarefulNumbers, careful_numbers
from providers._emulator.kit import EmulatorKit, PostalAddress, emulator_kit, emulator_names

TICK = timedelta(hours=6)
# Ledger writes that leave a dated note on their invoice beside the write (connector.outbox.executor); a done row's
# `error` says when the ledger refused that note.
LEDGER_WRITE_KINDS = frozenset({"late_fee", "discount_credit", "fee_reversal"})
NOTE_MARKER = "[nudge "  # ends every note Nudge writes on an invoice (both adapters), with the note's key hash
CALL_OUTCOME = "Spoke to accounts payable: the invoice is approved and payment is promised this week"
CALL_AFTER_DAYS = 1  # the accountant makes a call the day after its task fell due
# The owner reads the onboarding reviews at the first day's last tick (18:00 UTC: New York's afternoon, London's
# evening), when the first plan holds that day's catch-up for both companies, and approves them; a worker picks
# the approval up a minute later (what is still inside a customer's send window goes out then, the rest waits).
REVIEW_TICK = 3
APPROVAL_PICKED_UP = timedelta(minutes=1)
DEMO_PASSWORD = "nudge-demo-password"
DEMO_EMAIL = "demo@example.com"
DEMO_URL = "http://127.0.0.1:5000"  # where `nudge serve` listens with the config the demo writes
# The first company's owner asks to approve everything before it goes out for this many working days (weekdays
# that are no public holiday of the company's) before the end.
APPROVAL_WORKING_DAYS = 2
OLDER_DEBT_CADENCE = "long_overdue"
DISPUTED = {2: "Says the goods delivered were not what was ordered", 11: "Disputes the hours billed"}


@dataclass(frozen=True)
class CompanyProfile:
    """One demo company: who it is, where, and the currencies its customers pay in."""

    provider: str
    name: str
    currency: str
    time_zone: str
    utc_offset_hours: int
    country: str  # ISO 3166-1 alpha-2: the ledger's own country, whose public holidays apply
    subdivision: str  # the company address's state or region ("" where the ledger gives none)
    customers: int
    invoices: int
    foreign: tuple[tuple[str, str], ...]  # (currency, customer time zone) of some customers
    prefix: str


PROFILES = {
    "quickbooks": CompanyProfile(
        "quickbooks",
        "Hudson Valley Design Co.",
        "USD",
        "America/New_York",
        -5,
        "US",
        "NY",
        28,
        170,
        (("EUR", "Europe/Berlin"), ("CAD", "America/Toronto")),
        "HV",
    ),
    "xero": CompanyProfile(
        "xero",
        "Thames Joinery Ltd",
        "GBP",
        "Europe/London",
        0,
        "GB",
        "",
        24,
        140,
        (("EUR", "Europe/Paris"), ("AUD", "Australia/Sydney")),
        "TJ",
    ),
}

FIRST = [
    "Bright",
    "Harbor",
    "Summit",
    "Maple",
    "Cedar",
    "Granite",
    "Silver",
    "Northern",
    "Bluebird",
    "Copper",
    "Willow",
    "Atlas",
    "Beacon",
    "Orchard",
]
SECOND = [
    "Bakery",
    "Studio",
    "Logistics",
    "Dental",
    "Architects",
    "Florists",
    "Brewing",
    "Robotics",
    "Farms",
    "Outfitters",
    "Print",
    "Media",
]

RULES: dict[str, Any] = {
    "cadences": {
        "standard": {
            "send_time": "09:30",
            "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            "catch_up": "latest",
            "minimum_amount": {"USD": 10, "GBP": 10, "EUR": 10, "CAD": 10, "AUD": 10},
            "steps": [
                {"id": "courtesy", "offset": -3, "remind": "gentle_nudge", "discount": "early"},
                {"id": "due", "offset": 0, "remind": "due_today"},
                {"id": "late-3", "offset": 3, "remind": "firm", "note": "Overdue reminder sent by Nudge"},
                {"id": "late-10", "offset": 10, "remind": "firm", "late_fee": "monthly_interest"},
                {
                    "id": "call",
                    "offset": 17,
                    "call_task": "Phone accounts payable about the overdue balance",
                    "record_outcome_in_ledger": True,
                },
                {"id": "final", "offset": 24, "remind": "final_notice", "escalate": True},
            ],
        },
        # For a customer whose debt is months old when the practice takes it on (see `_Story`): first contacted
        # with a firm reminder (a late start's first contact is never a final notice), a call a week later, and
        # handed over to a person after two weeks.
        OLDER_DEBT_CADENCE: {
            "send_time": "09:30",
            "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            "catch_up": "latest",
            "steps": [
                {
                    "id": "overdue",
                    "offset": 1,
                    "remind": "firm",
                    "note": "Long-overdue account: reminder sent by Nudge",
                },
                {
                    "id": "overdue-call",
                    "offset": 8,
                    "call_task": "Phone about the long-overdue account before it is handed over",
                    "record_outcome_in_ledger": True,
                },
                # handed over with the hand-off pack (letter before claim, evidence ZIP, agency file): docs/handoff.md
                {"id": "hand-over", "offset": 15, "remind": "final_notice", "escalate": "handoff"},
            ],
        },
    },
    "policies": {
        "templates": ["gentle_nudge", "due_today", "firm", "final_notice", "discount_offer", "installment"],
        "late_fees": {
            "monthly_interest": {
                "kind": "interest",
                "rate_per_month": 1.5,
                "grace_days": 7,
                "repeat": "month",
                "max_count": 3,
                "min_fee": 5,
                "total_cap_percent": 10,
                "description": "Interest on overdue balance",
            }
        },
        "discounts": {"early": {"percent": 2, "days": 0, "basis": "due"}},
        "payment_plans": {"monthly": {"grace_days": 5, "template": "installment"}},
    },
}


@dataclass
class DayTally:
    """What happened on one simulated day."""

    reminders: int = 0
    notes: int = 0
    fees: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    fee_count: int = 0
    calls: int = 0
    escalations: int = 0
    holds: int = 0
    collected: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    payments: int = 0
    calls_made: int = 0  # call tasks a person completed (the phone call made, its outcome recorded)
    awaiting: int = 0  # actions newly waiting for a person's approval (approval mode)


@dataclass
class DemoSummary:
    """The outcome of a demo run (printed, and returned for the demo test)."""

    days: int
    reminders: int
    notes: int
    fee_count: int
    fees: dict[str, Decimal]
    calls: int
    escalations: int
    holds: int
    collected: dict[str, Decimal]
    payments: int
    paid_after_reminder: int
    dso_before: dict[str, Decimal]
    dso_after: dict[str, Decimal]
    ledger_writes: dict[str, dict[str, int]]
    outbox: Path
    config: Path
    seconds: float
    reminded_paid_invoices: int  # reminders about invoices already paid when sent: must be 0
    duplicate_keys: int  # actions carried out twice: must be 0
    report: dict[str, Any] = field(default_factory=dict)  # what summary.json holds
    report_path: Path | None = None
    handoff: tuple[Path, ...] = ()  # the hand-off packs written (one folder each, under <out>/handoff)
    calls_made: int = 0  # call tasks the demo's accountant completed
    holiday_reminders: tuple[str, ...] = ()  # reminders that went out on a public holiday (must be none)


class Habit(StrEnum):
    """How an emulated customer pays one invoice (the behaviour model)."""

    EARLY = "early"  # takes the discount the courtesy reminder offers: total less discount before the due date
    FIRST = "first"  # pays a few days after the first reminder
    FIRM = "firm"  # pays only after a firm (or final) reminder
    BANK_LAG = "bank_lag"  # pays after the late fee, the money dated before the fee's assessment
    PLAN = "plan"  # agrees a payment plan at the firm reminder and pays its installments (or breaks it)
    NEVER = "never"  # never pays


HABITS = (
    (Habit.EARLY, 14),
    (Habit.FIRST, 26),
    (Habit.FIRM, 22),
    (Habit.BANK_LAG, 12),
    (Habit.PLAN, 6),
    (Habit.NEVER, 20),
)


@dataclass(frozen=True)
class CustomerHabit:
    """One invoice's payer: its habit, how many days it takes to act, and the date it pays anyway (None: never)."""

    habit: Habit
    lag_days: int
    own_date: date | None


def _habit(seed: int, number: str, due: date, start: date) -> CustomerHabit:
    """The payer of invoice `number`, deterministic from the seed and the number alone (the same with or
    without Nudge, whatever order events happen in)."""
    rng = random.Random(int(hashlib.sha256(f"{seed}:{number}".encode()).hexdigest()[:16], 16))
    habit = rng.choices([h for h, _ in HABITS], weights=[w for _, w in HABITS])[0]
    lag = rng.randint(1, 4)
    own_days = {Habit.EARLY: (-5, 15), Habit.FIRST: (-2, 25), Habit.FIRM: (10, 40), Habit.BANK_LAG: (20, 50)}
    bounds = own_days.get(habit)
    if bounds is None:  # plan payers and non-payers never pay in full on their own within the demo
        return CustomerHabit(habit, lag, None)
    own = max(due + timedelta(days=rng.randint(*bounds)), start + timedelta(days=rng.randint(1, 20)))
    return CustomerHabit(habit, lag, own)


class DemoClock:
    """Nudge's clock during the demo: moved by the demo, read by every service."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment


@dataclass
class _Company:
    profile: CompanyProfile
    kit: EmulatorKit
    tenant: str = ""
    connection_id: int = 0
    invoices: dict[str, tuple[str, Decimal, str, date]] = field(default_factory=dict)  # id -> customer, total, cur, due
    issued: list[tuple[date, Decimal, str]] = field(default_factory=list)
    numbers: int = 0
    seed: int = 0
    start: date = date.min
    habits: dict[str, CustomerHabit] = field(default_factory=dict)
    paid_before: set[str] = field(default_factory=set)  # paid in full before the demo began
    collected: Decimal = Decimal(0)  # home-currency payments during the demo
    plans: dict[str, bool] = field(default_factory=dict)  # invoice id -> the payer breaks its plan
    acted: set[str] = field(default_factory=set)  # payers who reacted to a reminder or fee
    where: str = ""  # the connection's zone and holiday calendar as Nudge took them from the ledger
    number_of: dict[str, str] = field(default_factory=dict)  # invoice id -> its number
    discount_taken: set[str] = field(default_factory=set)  # paid total less discount: no own-date payment
    org_id: int = 0
    story_invoices: dict[str, str] = field(default_factory=dict)  # `_Story`'s invoices (id -> number): never paid
    story_customers: int = 0


@dataclass(frozen=True)
class StoryInvoice:
    """An invoice the story adds to a ledger (outside the behaviour model: its customer does not pay in the demo)."""

    number: int  # after the company's prefix: lower than the seeded ones (1001 on), as older invoices are
    amount: Decimal
    issued_days_before: int  # before the first simulated day
    terms_days: int


# A customer whose debt is months old when the practice takes the company on (chased with OLDER_DEBT_CADENCE).
OLDER_DEBT_CUSTOMER = "Old Mill Interiors"
OLDER_DEBT_ADDRESS = PostalAddress(("Unit 4, Old Mill Yard",), "Leeds", "LS1 4AP", "United Kingdom", "+44 113 496 0000")
OLDER_DEBT = (StoryInvoice(931, Decimal("4860.00"), 100, 30), StoryInvoice(947, Decimal("2315.50"), 85, 30))
# An invoice an old import left in Lithuanian litas (replaced by the euro in 2015, no longer ISO 4217): the
# sync cannot read its amounts and quarantines it.
RETIRED_CURRENCY = "LTL"
RETIRED_CURRENCY_CUSTOMER = "Baltic Linen Traders"
RETIRED_CURRENCY_INVOICE = StoryInvoice(988, Decimal("12400.00"), 40, 30)


@dataclass
class _Story:
    """What the web app's inbox should hold at the end, brought about through the product's own paths: an older
    debt handed over to a person (the last company), an invoice the sync quarantines and actions waiting for
    approval (the first company, from `approval_day` on)."""

    older_debt: _Company
    quarantine: _Company
    approval: _Company
    approval_day: int | None  # the simulated day (0-based) approval mode is switched on; None: never
    older_debt_customer: str = ""  # its external id in the ledger


def _write_config(out: Path, companies: list[_Company], base_url: str) -> Path:
    config = {
        "mode": "development",  # the providers are the local emulators (plain http on 127.0.0.1)
        "instance_path": str(out),
        "database": {"url": f"sqlite:///{out / 'nudge.sqlite3'}"},
        # A throw-away demo folder: its keys are written here so `nudge serve` can open it afterwards.
        "vault": {"active_key": "demo", "keys": {"demo": generate_key()}},
        "web": {"secret_key": generate_key(), "base_url": base_url, "session_cookie_secure": False},
        "mail": {"backend": "maildir", "outbox_path": str(out / "outbox"), "from_address": "billing@nudge.example"},
        "scheduler": {"jitter_seconds": 1, "sync_interval_minutes": 60, "full_reconcile_hours": 24},
        "providers": {},
        **RULES,
    }
    for company in companies:
        kit = company.kit
        settings = kit.settings(f"{base_url}/oauth/{company.profile.provider}/callback", **kit.compressed_time_options)
        config["providers"][company.profile.provider] = {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "redirect_uri": settings.redirect_uri,
            "environment": settings.environment,
            "api_base": settings.api_base,
            "identity_base": settings.identity_base,
            "options": dict(settings.options),
        }
    path = out / "nudge.yaml"
    path.write_text("# Written by `nudge demo` for its throw-away folder.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST)} {rng.choice(SECOND)}"
        if name not in used:
            used.add(name)
            return name


def _seed(company: _Company, rng: random.Random, start: date) -> list[tuple[str, str, str]]:
    """Customers and invoices; some paid on time before the demo starts. Returns (ext id, zone, locale)."""
    profile, kit = company.profile, company.kit
    company.tenant = kit.add_company(
        profile.name,
        profile.currency,
        utc_offset_hours=profile.utc_offset_hours,
        foreign_currencies=True,
        country=profile.country,
        subdivision=profile.subdivision,
        time_zone=profile.time_zone,
    )
    used: set[str] = set()
    customers: list[tuple[str, str, str, str]] = []  # id, currency, zone, locale
    locales = {"EUR": "de_DE", "CAD": "en_CA", "AUD": "en_AU", "USD": "en_US", "GBP": "en_GB"}
    for n in range(profile.customers):
        currency, zone = profile.foreign[n % len(profile.foreign)] if n % 5 == 4 else (profile.currency, "")
        name = _name(rng, used)
        external = kit.add_customer(company.tenant, name, _address(name), currency)
        customers.append((external, currency, zone, locales.get(currency, "en_US")))
    for _ in range(profile.invoices):
        customer, currency, _, _ = customers[rng.randrange(len(customers))]
        issued = start - timedelta(days=rng.randint(3, 55))
        _add_invoice(company, rng, customer, currency, issued)
    for invoice_id, (_, total, _, due) in list(company.invoices.items()):
        if due < start and rng.random() < 0.45:  # paid on time, before the demo began
            kit.pay(company.tenant, invoice_id, total, due - timedelta(days=rng.randint(0, 5)))
            company.paid_before.add(invoice_id)
    return [(external, zone, locale) for external, _, zone, locale in customers]


def seed_demo_company(kit: EmulatorKit, *, seed: int = 2026, today: date | None = None) -> tuple[str, int, int]:
    """The demo's company of `kit`'s provider (Hudson Valley Design Co. for QuickBooks, Thames Joinery Ltd for Xero)
    in the running emulator, as `nudge demo` seeds it, with its invoices dated around `today` (default: the real
    today): (tenant id, customers, invoices). For `nudge emulator --seed demo`, so `nudge dev` has invoices to sync."""
    first = today or datetime.now(UTC).date()
    profile = PROFILES.get(kit.provider)
    if profile is None:  # a provider the demo has no story for: a plain seeded company
        return kit.seed_company(f"Demo {kit.provider} company", customers=10, invoices=30), 10, 30
    company = _Company(profile, kit, seed=seed, start=first)
    _seed(company, random.Random(seed), first)
    return company.tenant, profile.customers, len(company.invoices)


def _add_invoice(company: _Company, rng: random.Random, customer: str, currency: str, issued: date) -> None:
    company.numbers += 1
    amount = Decimal(rng.randint(150_00, 8_500_00)) / 100
    due = issued + timedelta(days=rng.choice((14, 30, 30, 30, 45)))
    number = f"{company.profile.prefix}-{1000 + company.numbers}"
    invoice_id = company.kit.add_invoice(company.tenant, customer, number, amount, currency, issued, due)
    company.invoices[invoice_id] = (customer, amount, currency, due)
    company.number_of[invoice_id] = number
    company.issued.append((issued, amount, currency))
    company.habits[invoice_id] = _habit(company.seed, number, due, company.start)


def _seed_story(story: _Story, first_day: date) -> None:
    """The story's customers and invoices, in the ledgers before Nudge connects (no draw from the demo's random
    numbers, so the rest of the seeded world is the same with or without them)."""
    company, kit = story.older_debt, story.older_debt.kit
    story.older_debt_customer = kit.add_customer(
        company.tenant,
        OLDER_DEBT_CUSTOMER,
        _address(OLDER_DEBT_CUSTOMER),
        company.profile.currency,
        address=OLDER_DEBT_ADDRESS,  # the hand-off pack's letter and agency file name where the debtor is
    )
    company.story_customers += 1
    for invoice in OLDER_DEBT:
        _add_story_invoice(company, story.older_debt_customer, invoice, company.profile.currency, first_day)
    company, kit = story.quarantine, story.quarantine.kit
    customer = kit.add_customer(
        company.tenant, RETIRED_CURRENCY_CUSTOMER, _address(RETIRED_CURRENCY_CUSTOMER), RETIRED_CURRENCY
    )
    company.story_customers += 1
    _add_story_invoice(company, customer, RETIRED_CURRENCY_INVOICE, RETIRED_CURRENCY, first_day)


def _add_story_invoice(company: _Company, customer: str, invoice: StoryInvoice, currency: str, first_day: date) -> None:
    number = f"{company.profile.prefix}-{invoice.number:04d}"
    issued = first_day - timedelta(days=invoice.issued_days_before)
    due = issued + timedelta(days=invoice.terms_days)
    invoice_id = company.kit.add_invoice(company.tenant, customer, number, invoice.amount, currency, issued, due)
    company.story_invoices[invoice_id] = number


def _address(name: str) -> str:
    return f"accounts@{name.lower().replace(' ', '-')}.example"


def _dso(company: _Company, today: date) -> Decimal:
    """Days sales outstanding (connector.domain.dso) in the home currency: the kit's open balances ÷ average daily
    sales over the last 60 days (invoices issued), counting only the customers' own invoices."""
    home = company.profile.currency
    receivables = sum(
        (
            company.kit.balance(company.tenant, invoice_id)
            for invoice_id, (_, _, currency, _) in company.invoices.items()
            if currency == home
        ),
        Decimal(0),
    )
    home_sales = ((issued, amount) for issued, amount, currency in company.issued if currency == home)
    sales = sales_in_period(home_sales, period_end=today, period_days=DEFAULT_PERIOD_DAYS)
    return days_sales_outstanding(receivables, sales, DEFAULT_PERIOD_DAYS)


@contextmanager
def _started(kits: list[EmulatorKit]) -> Iterator[None]:
    started: list[EmulatorKit] = []
    try:
        for kit in kits:
            kit.start()
            started.append(kit)
        yield
    finally:
        for kit in started:
            kit.stop()


def run_demo(
    *,
    days: int = 60,
    out: Path = Path("demo-out"),
    seed: int = 2026,
    providers: list[str] | None = None,
    echo: Callable[[str], None] = print,
    start: datetime | None = None,
) -> DemoSummary:
    """Run the demo and return its summary; `echo` receives every printed line."""
    import time

    began = time.monotonic()
    rng = random.Random(seed)
    names = providers or [name for name in ("quickbooks", "xero") if name in emulator_names()]
    # Limits off: the demo compresses days into seconds, so the providers' per-minute budgets would only add waits.
    kits = [emulator_kit(name, rate_limits=False) for name in names]
    out = _fresh_folder(out)
    first = default_start(days) if start is None else start.astimezone(UTC)
    first = first.replace(hour=0, minute=0, second=0, microsecond=0)
    clock = DemoClock(first)
    with _started(kits):
        companies = [_Company(PROFILES[kit.provider], kit, seed=seed, start=first.date()) for kit in kits]
        for kit in kits:
            kit.set_now(first)
        zones = {company.profile.provider: _seed(company, rng, first.date()) for company in companies}
        approval_day = _approval_day(days, first.date(), companies[0])
        story = _Story(companies[-1], companies[0], companies[0], approval_day=approval_day)
        _seed_story(story, first.date())
        config = _write_config(out, companies, DEMO_URL)
        services = build(load_settings(str(config)), clock=clock)
        services.store.upgrade()
        _connect_companies(services, companies, zones, story)
        _announce(echo, companies, days, first, out)
        worker = _demo_worker(services, clock)
        run = _Simulation(services, companies, worker, clock, rng, echo, _Outbox(out / "outbox"), story)
        run.pages = _customer_page_scenes(services, companies[0], run, echo)
        for day in range(days):
            run.day(first, day)
        run.last_sync()
        end = clock.moment.date()
        dso_after = {c.profile.name: _dso(c, end) for c in companies}
        writes = {c.profile.name: _ledger_writes(c) for c in companies}
        duplicates = _duplicates(services) + _ledger_excess(services, companies, writes)
        careful = careful_numbers(
            services.store,
            services.settings.rules,
            first.date(),
            home_countries={c.connection_id: c.profile.country for c in companies},
        )
        report = _report(services, companies, end, run.reminded_paid, duplicates, careful)
        report.update(_inbox(services))
        handoff = write_handoff_packs(services, out / "handoff")
        report["handoff_packs"] = len(handoff)
        report["customer_page"] = run.pages.report()
    totals = run.totals
    summary = DemoSummary(
        days=days,
        reminders=totals.reminders,
        notes=totals.notes,
        fee_count=totals.fee_count,
        fees=dict(totals.fees),
        calls=totals.calls,
        escalations=totals.escalations,
        holds=totals.holds,
        collected=dict(totals.collected),
        payments=totals.payments,
        paid_after_reminder=len(run.paid_after_reminder),
        dso_before=run.dso_before,
        dso_after=dso_after,
        ledger_writes=writes,
        outbox=out / "outbox",
        config=config,
        seconds=round(time.monotonic() - began, 1),
        reminded_paid_invoices=run.reminded_paid,
        duplicate_keys=duplicates,
        report=report,
        report_path=out / "summary.json",
        calls_made=totals.calls_made,
        holiday_reminders=careful.holiday_reminders,
        handoff=handoff,
    )
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    for line in _summary_lines(summary):
        echo(line)
    for line in _handoff_lines(summary):
        echo(line)
    return summary


# -- hand-off packs (docs/handoff.md): the older debt is handed over with its pack; the demo writes each out ---------
def write_handoff_packs(services: Services, folder: Path) -> tuple[Path, ...]:
    """Write every hand-off pack in the store to `folder/<id>-<customer>/` (letter.pdf, evidence.zip,
    placement.csv); the folders written, oldest pack first."""
    written = []
    with services.store.unit_of_work() as uow:
        for pack in uow.session.scalars(select(HandoffPack).order_by(HandoffPack.id)):
            where = folder / f"{pack.id}-{safe_name(pack.customer_name, fallback='customer')}"
            where.mkdir(parents=True, exist_ok=True)
            (where / "letter.pdf").write_bytes(pack.letter_pdf)
            (where / "evidence.zip").write_bytes(pack.evidence_zip)
            (where / "placement.csv").write_bytes(pack.placement_csv)
            written.append(where)
    return tuple(written)


def _handoff_lines(summary: DemoSummary) -> list[str]:
    """Where the hand-off packs were written (none: the run was too short for the older debt's hand-over)."""
    if not summary.handoff:
        return ["Hand-off packs: none yet (the older debt is handed over on the run's fifteenth day)"]
    return [f"Hand-off pack written: {where} (letter.pdf, evidence.zip, placement.csv)" for where in summary.handoff]


def default_start(days: int, now: datetime | None = None) -> datetime:
    """The first simulated day without `--start`: `days` before today (UTC), so the last one is yesterday and the
    web app, which reads the real clock, looks at the demo's world the morning after (never at a future one)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _approval_day(days: int, first: date, company: _Company) -> int | None:
    """The simulated day the company switches to approval mode: so that its last APPROVAL_WORKING_DAYS working days
    fall in it (a run ending over Christmas still has reminders falling due), never before the day after the review;
    None in a one-day run."""
    calendar = HolidayCalendar(company.profile.country, company.profile.subdivision or None)
    working = 0
    for day in range(days - 1, 0, -1):
        today = first + timedelta(days=day)
        working += today.weekday() < 5 and not calendar.is_holiday(today)
        if working == APPROVAL_WORKING_DAYS:
            return day
    return 1 if days > 1 else None


def _fresh_folder(out: Path) -> Path:
    """The demo folder, absolute and created, without the database of an earlier run."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("nudge.sqlite3", "nudge.sqlite3-wal", "nudge.sqlite3-shm"):
        (out / stale).unlink(missing_ok=True)
    return out


def _connect_companies(
    services: Services, companies: list[_Company], zones: dict[str, list[tuple[str, str, str]]], story: _Story
) -> None:
    """The demo practice signs up and connects every company; a first sync brings the customers in, and the
    accountant sets their details (and puts the customer with the older debt on its own cadence)."""
    org_id = _organization(services)
    for company in companies:
        company.org_id = org_id
        _connect(services, company)
    for company in companies:
        _first_sync(services, company)
        _customer_details(services, company, zones[company.profile.provider])
    _older_debt_cadence(services, story)


def _announce(echo: Callable[[str], None], companies: list[_Company], days: int, first: datetime, out: Path) -> None:
    """The opening lines: what is simulated, where the emails go, and each connected company."""
    echo(
        f"Nudge demo: {len(companies)} companies, {days} days from {first.date().isoformat()}; outbox: {out / 'outbox'}"
    )
    for company in companies:
        invoices = len(company.invoices) + len(company.story_invoices)
        customers = company.profile.customers + company.story_customers
        echo(
            f"  connected {company.profile.provider}: {company.profile.name} "
            f"({invoices} invoices, {customers} customers; {company.where})"
        )


def _customer_page_scenes(
    services: Services, company: _Company, run: _Simulation, echo: Callable[[str], None]
) -> CustomerPageScenes:
    """Issue 17's scenes on the first company: customers who never pay on their own use their page."""
    never = {invoice_id for invoice_id, habit in company.habits.items() if habit.habit is Habit.NEVER}
    return CustomerPageScenes(
        services,
        company.connection_id,
        company.org_id,
        pay=lambda invoice_id, dated: _pay(company, invoice_id, Decimal(0), dated, run.totals),
        echo=echo,
        never_pays=never - set(company.story_invoices),
    )


def _demo_worker(services: Services, clock: DemoClock) -> Worker:
    """One in-process worker that runs each leased connection's turn on the demo clock."""
    reminders = services.reminder_sender()

    def process(connection_id: int, lease: Lease) -> None:
        run_connection(services, connection_id, lease.owner, reminders=reminders, renew=lease.renew)

    return Worker(services.store, process, services.settings.scheduler, clock, owner="demo-worker")


@dataclass
class _Simulation:
    """The simulated days: the clocks, the worker and customers' payments, with the running totals."""

    services: Services
    companies: list[_Company]
    worker: Worker
    clock: DemoClock
    rng: random.Random
    echo: Callable[[str], None]
    outbox: _Outbox
    story: _Story
    totals: DayTally = field(default_factory=DayTally)
    dso_before: dict[str, Decimal] = field(default_factory=dict)
    pending: list[_Pay] = field(default_factory=list)
    seen_actions: set[int] = field(default_factory=set)
    seen_waiting: set[int] = field(default_factory=set)
    paid_after_reminder: set[tuple[str, str]] = field(default_factory=set)
    reminded_paid: int = 0
    pages: CustomerPageScenes | None = None  # issue 17's customer page scenes (demo_customer_page.py)

    def day(self, first: datetime, day: int) -> None:
        """Four ticks of simulated day number `day` after `first`, then its line and the running totals."""
        tally = DayTally()
        today = (first + timedelta(days=day)).date()
        for tick in range(4):
            moment = first + timedelta(days=day) + tick * TICK
            self.tick(
                moment,
                today,
                tally,
                first_tick_of_day=tick == 0,
                ask_approval=tick == 0 and day == self.story.approval_day,
                day=day,
            )
            if day == 0 and tick == 0:
                self.dso_before = {c.profile.name: _dso(c, today) for c in self.companies}
            if day == 0 and tick == REVIEW_TICK:
                self.review_and_approve()
                self.tick(moment + APPROVAL_PICKED_UP, today, tally, first_tick_of_day=False)
            self.reminded_paid += _tally(
                self.services, self.companies, self.seen_actions, tally, self.pending, today, self.outbox
            )
            if self.story.approval_day is not None and day >= self.story.approval_day:
                tally.awaiting += _newly_waiting(self.services, self.seen_waiting)
        self.echo(_day_line(today, tally))
        _accumulate(self.totals, tally)

    def tick(
        self,
        moment: datetime,
        today: date,
        tally: DayTally,
        *,
        first_tick_of_day: bool,
        ask_approval: bool = False,
        day: int | None = None,
    ) -> None:
        """Move the clocks to `moment` (customers pay and new sales are issued at a day's start), then a worker tick;
        `ask_approval`: before it, the first company's owner switches approval mode on."""
        self.set_now(moment)
        if first_tick_of_day:
            self.pending = _customers_pay(self.companies, self.pending, today, tally, self.paid_after_reminder)
            _new_sales(self.companies, self.rng, today)
            days_off = [HolidayCalendar(c.profile.country, c.profile.subdivision or None) for c in self.companies]
            tally.calls_made += _make_calls(self.services, today, days_off)
            if self.pages is not None and day is not None:
                self.pages.on_day(day, today)
        if ask_approval:
            self.ask_approval(today)
        report = self.worker.tick()
        for connection_id, error in report.failed.items():
            self.echo(f"    connection {connection_id} failed: {error}")

    def review_and_approve(self) -> None:
        """The first day's syncs and plans are done and nothing went out: the owner reads each company's onboarding
        review (what `nudge review` shows) and approves it (`nudge approve --all`), which starts the cadence."""
        for company in self.companies:
            review = review_of(self.services.store, company.connection_id)
            for line in _review_lines(review):
                self.echo(line)
            approve(self.services.store, company.connection_id, DEMO_EMAIL, self.clock.now(), keys=None)
            self.echo(f"    approved by {DEMO_EMAIL}: chasing starts now")

    def ask_approval(self, today: date) -> None:
        """The owner of the story's approval company wants to see everything before it goes out: approval mode
        "all" in its client settings (what the settings screen saves); what falls due from now on waits."""
        company = self.story.approval
        _set_client(self.services, company, {"approval": "all"})
        self.echo(
            f"  from {today.strftime('%a %d %b')} {company.profile.name} approves everything before it goes out "
            f"(approval mode, set by {DEMO_EMAIL})"
        )

    def last_sync(self) -> None:
        """A minute on, a last worker tick, so the closing numbers see every payment."""
        self.set_now(self.clock.moment + timedelta(minutes=1))
        self.worker.tick()

    def set_now(self, moment: datetime) -> None:
        """Nudge's clock and every emulator's."""
        self.clock.moment = moment
        for company in self.companies:
            company.kit.set_now(moment)


def _organization(services: Services) -> int:
    """The demo practice and its owner, the library seeded from the starter cadences (as sign-up does)."""
    with services.store.unit_of_work() as uow:
        org = create_organization(uow, "Demo Bookkeeping Practice", services.settings, services.clock.now())
        user = create_user(uow, DEMO_EMAIL, DEMO_PASSWORD, "Demo Accountant")
        user.email_verified_at = services.clock.now()  # example.com gets no mail: taken as checked
        uow.memberships.add(user.id, org.id, Role.OWNER)
        uow.commit()
        return org.id


def _connect(services: Services, company: _Company) -> None:
    """The real OAuth flow: Nudge's authorize URL, the emulator's consent page, Nudge's callback; then the user
    picks the client's cadence in its settings."""
    key = company.profile.provider
    spec, settings = services.registry.spec(key), services.registry.settings(key)
    request = begin_connect(spec, settings)
    params = company.kit.approve(request.url, [company.tenant])
    connected = complete_connect(
        services.store,
        services.vault,
        spec,
        settings,
        company.org_id,
        params,
        request.state,
        request.code_verifier,
        services.clock.now(),
        actor=DEMO_EMAIL,
    )[0]  # one company was chosen on the consent page
    company.connection_id = connected.connection_id
    # The user picks the cadence; the zone, holiday calendar and home currency come from the ledger itself.
    _set_client(services, company, {"cadence_id": _cadence_id(services, company.org_id, "standard")})
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connected.connection_id)
        assert connection is not None
        calendar = "-".join(part for part in (connection.holiday_country, connection.holiday_subdiv) if part)
        company.where = (
            f"{connection.time_zone}, {calendar or 'no'} public holidays, "
            f"{'waiting for review' if connection.chasing == 'review' else connection.chasing}"
        )


def _cadence_id(services: Services, org_id: int, name: str) -> int:
    """The id of the library cadence `name` (what the cadence pickers send)."""
    with services.store.unit_of_work() as uow:
        return next(item.id for item in list_items(uow, org_id, CADENCE) if item.name == name)


def _set_client(services: Services, company: _Company, changes: dict[str, Any]) -> None:
    """Change a client's settings as the settings screen does (checked, audited, an activity)."""
    update_client_settings(
        services.store,
        company.org_id,
        company.connection_id,
        changes,
        DEMO_EMAIL,
        services.clock.now(),
        InstallDefaults.of(services.settings),
    )


def _first_sync(services: Services, company: _Company) -> None:
    """The connection's first sync (what a worker turn does first), so its customers are there to set up."""
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(company.connection_id)
        assert connection is not None
        adapter = adapter_for(services, connection)
    every = reconcile_every(services.settings)
    sync_connection(services.store, adapter, company.connection_id, services.clock.now, full_reconcile_every=every)


def _customer_ids(services: Services, company: _Company) -> dict[str, int]:
    """The company's synced customers: external id -> row id (what the customer pages are addressed by)."""
    with services.store.unit_of_work() as uow:
        return dict(
            uow.session.execute(
                select(Customer.external_id, Customer.id).where(Customer.connection_id == company.connection_id)
            ).all()
        )


def _set_customer(services: Services, company: _Company, customer_id: int, changes: dict[str, Any]) -> None:
    """Change a customer's overrides as the customer page does (checked, audited, on its timeline)."""
    update_customer_overrides(
        services.store, company.org_id, company.connection_id, customer_id, changes, DEMO_EMAIL, services.clock.now()
    )


def _customer_details(services: Services, company: _Company, zones: list[tuple[str, str, str]]) -> None:
    """What a user sets in Nudge: customers' own zones and locales, and a couple of disputes with their reasons."""
    ids = _customer_ids(services, company)
    for index, (external, zone, locale) in enumerate(zones):
        changes: dict[str, Any] = {"locale": locale}
        if zone:
            changes["time_zone"] = zone
        if index in DISPUTED:
            changes.update(dispute=True, dispute_reason=DISPUTED[index])
        _set_customer(services, company, ids[external], changes)


def _older_debt_cadence(services: Services, story: _Story) -> None:
    """The accountant puts the customer with the older debt on the library's long-overdue cadence."""
    company = story.older_debt
    customer_id = _customer_ids(services, company)[story.older_debt_customer]
    cadence_id = _cadence_id(services, company.org_id, OLDER_DEBT_CADENCE)
    _set_customer(services, company, customer_id, {"cadence_id": cadence_id})


def _new_sales(companies: list[_Company], rng: random.Random, today: date) -> None:
    if today.weekday() >= 5:
        return
    for company in companies:
        for _ in range(rng.randint(1, 3)):
            customer, _, currency, _ = company.invoices[rng.choice(list(company.invoices))]
            _add_invoice(company, rng, customer, currency, today)


@dataclass
class _Outbox:
    """The emails the demo's maildir mailer wrote, by Message-ID: what each customer really received."""

    folder: Path
    texts: dict[str, str] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)

    def text(self, message_id: str) -> str:
        """The plain-text body of the email with this Message-ID ("" when there is none)."""
        if message_id.strip() not in self.texts:
            for path in self.folder.glob("*.eml"):
                if path.name in self.read:
                    continue
                self.read.add(path.name)
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                body = message.get_body(preferencelist=("plain",))
                self.texts[str(message["Message-ID"]).strip()] = body.get_content() if body is not None else ""
        return self.texts.get(message_id.strip(), "")


@dataclass(frozen=True)
class _Pay:
    """A payment an emulated customer will make: on `when` (arrival), `amount` (0: the whole balance), the
    money dated `dated` (None: the arrival date; earlier for a bank lag)."""

    when: date
    company: _Company
    invoice_id: str
    amount: Decimal = Decimal(0)
    dated: date | None = None


def _tally(
    services: Services,
    companies: list[_Company],
    seen: set[int],
    tally: DayTally,
    pending: list[_Pay],
    today: date,
    outbox: _Outbox,
) -> int:
    """Count newly done actions; customers react to each reminder (as the email they received reads) and late fee
    as their habits say."""
    by_connection = {c.connection_id: c for c in companies}
    reminded_paid = 0
    with services.store.unit_of_work() as uow:
        rows = uow.session.scalars(select(Action).where(Action.state == "done", Action.id.not_in(seen or {0}))).all()
    for row in rows:
        seen.add(row.id)
        company = by_connection[row.connection_id]
        _count_done(tally, row.kind, row.payload, row.error)
        if row.kind == "remind":
            received = outbox.text(row.external_ref)
            reminded_paid += _customer_decides(services, company, row.payload, received, pending, today)
        elif row.kind == "late_fee":
            _fee_arrives(company, row.payload, pending, today)
    return reminded_paid


def _count_done(tally: DayTally, kind: str, payload: dict[str, Any], error: str) -> None:
    """Add one done action of `kind` (a late fee with its amount) to the day's tally; a ledger note counts the
    step's own notes and the note every fee, credit and reversal leaves beside it (unless the ledger refused it)."""
    if kind in LEDGER_WRITE_KINDS and not error:
        tally.notes += 1
    if kind == "remind":
        tally.reminders += 1
    elif kind == "note":
        tally.notes += 1
    elif kind == "late_fee":
        tally.fee_count += 1
        amount = payload.get("amount") or {}
        tally.fees[amount.get("currency", "")] += Decimal(amount.get("amount", "0"))
    elif kind == "call_task":
        tally.calls += 1
    elif kind == "escalate":
        tally.escalations += 1
    elif kind == "hold":
        tally.holds += 1


def _customer_decides(
    services: Services, company: _Company, payload: dict[str, Any], email_text: str, pending: list[_Pay], today: date
) -> int:
    """A reminder reaches the customer: the payer of each invoice the email lists reacts as its habit says; returns
    how many of the listed invoices were already paid. (An invoice the reminder was planned for but paid before it
    went out is left out of the email by the executor's last look at the ledger: nothing to read, nothing to count.)"""
    template = payload.get("template") or ""
    items = {item.get("invoice_external_id"): item for item in payload.get("items") or []}
    reminded_paid = 0
    for invoice_id in payload["invoice_external_ids"]:
        if invoice_id not in company.invoices:
            continue  # not one of the customers' own invoices
        if not re.search(rf"\b{re.escape(company.number_of[invoice_id])}\b", email_text):
            continue  # not in the email the customer received
        balance = company.kit.balance(company.tenant, invoice_id)
        if balance == 0:
            reminded_paid += 1
        elif invoice_id not in company.acted:
            item = items.get(invoice_id) or {}
            _react(services, company, invoice_id, item.get("template") or template, item.get("offer"), pending, today)
    return reminded_paid


def _react(
    services: Services,
    company: _Company,
    invoice_id: str,
    template: str,
    offer: dict[str, Any] | None,
    pending: list[_Pay],
    today: date,
) -> None:
    """One payer's reaction to a reminder rendered from `template` (with a discount `offer` or none)."""
    habit = company.habits[invoice_id]
    firm = template in ("firm", "final_notice")
    if habit.habit is Habit.EARLY and offer:
        deadline = date.fromisoformat(offer["deadline"])
        when = min(today + timedelta(days=min(habit.lag_days, 2)), deadline)
        pending.append(_Pay(max(when, today), company, invoice_id, Decimal(offer["pay_amount"]["amount"])))
        company.discount_taken.add(invoice_id)
    elif habit.habit in (Habit.EARLY, Habit.FIRST) or (habit.habit is Habit.FIRM and firm):
        pending.append(_Pay(today + timedelta(days=habit.lag_days), company, invoice_id))
    elif habit.habit is Habit.PLAN and firm:
        _agree_plan(services, company, invoice_id, pending, today)
    else:
        return
    company.acted.add(invoice_id)


def _agree_plan(services: Services, company: _Company, invoice_id: str, pending: list[_Pay], today: date) -> None:
    """The customer agrees three weekly installments (entered in Nudge as a user would); the company's first plan
    payer pays only the first installment and breaks the plan, the others keep theirs."""
    balance = company.kit.balance(company.tenant, invoice_id)
    currency = company.invoices[invoice_id][2]
    share = (balance / 3).quantize(Decimal("0.01"))
    amounts = [share, share, balance - 2 * share]
    dates = [today + timedelta(days=7 * (n + 1)) for n in range(3)]
    breaks = not company.plans
    company.plans[invoice_id] = breaks
    with services.store.unit_of_work() as uow:
        plan = PaymentPlan(
            connection_id=company.connection_id,
            invoice_external_id=invoice_id,
            grace_days=5,
            policy="monthly",
            created_at=services.clock.now(),
        )
        plan.installments = [
            Installment(due_date=due, amount=amount, currency=currency)
            for due, amount in zip(dates, amounts, strict=True)
        ]
        uow.session.add(plan)
        uow.commit()
    for due, amount in list(zip(dates, amounts, strict=True))[: 1 if breaks else 3]:
        pending.append(_Pay(due, company, invoice_id, amount))


def _fee_arrives(company: _Company, payload: dict[str, Any], pending: list[_Pay], today: date) -> None:
    """A late fee was charged: a bank-lag payer's money, sent before the fee's assessment, arrives days later."""
    fee = payload.get("fee") or {}
    for invoice_id in payload.get("invoice_external_ids") or []:
        habit = company.habits.get(invoice_id)
        if habit is None or habit.habit is not Habit.BANK_LAG or invoice_id in company.acted or not fee:
            continue
        assessed = date.fromisoformat(fee["assessed_on"])
        pending.append(_Pay(today + timedelta(days=habit.lag_days), company, invoice_id, dated=assessed - timedelta(1)))
        company.acted.add(invoice_id)


def _customers_pay(
    companies: list[_Company],
    pending: list[_Pay],
    today: date,
    tally: DayTally,
    paid_after_reminder: set[tuple[str, str]],
) -> list[_Pay]:
    """Today's payments: those decided after reminders and fees, then each payer's own date; returns the later ones."""
    later = [pay for pay in pending if pay.when > today]
    for pay in (pay for pay in pending if pay.when <= today):
        if _pay(pay.company, pay.invoice_id, pay.amount, pay.dated or today, tally):
            paid_after_reminder.add((pay.company.profile.provider, pay.invoice_id))
    for company in companies:
        for invoice_id, habit in company.habits.items():
            if habit.own_date == today and invoice_id not in company.discount_taken:
                _pay(company, invoice_id, Decimal(0), today, tally)
    return later


def _pay(company: _Company, invoice_id: str, amount: Decimal, dated: date, tally: DayTally) -> bool:
    """The customer pays `amount` (0: the whole balance, never more than it) dated `dated`; False if nothing was due."""
    balance = company.kit.balance(company.tenant, invoice_id)
    if balance <= 0:
        return False
    paid = min(amount or balance, balance)
    company.kit.pay(company.tenant, invoice_id, paid, dated)
    currency = company.invoices[invoice_id][2]
    tally.payments += 1
    tally.collected[currency] += paid
    if currency == company.profile.currency:
        company.collected += paid
    return True


def _accumulate(totals: DayTally, day: DayTally) -> None:
    for name in (
        "reminders",
        "notes",
        "fee_count",
        "calls",
        "escalations",
        "holds",
        "payments",
        "calls_made",
        "awaiting",
    ):
        setattr(totals, name, getattr(totals, name) + getattr(day, name))
    for currency, amount in day.fees.items():
        totals.fees[currency] += amount
    for currency, amount in day.collected.items():
        totals.collected[currency] += amount


def _money(amounts: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(amounts.items()) if amount) or "0"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _day_line(today: date, tally: DayTally) -> str:
    parts = [_count(tally.reminders, "reminder"), _count(tally.notes, "note")]
    if tally.fee_count:
        parts.append(f"{_count(tally.fee_count, 'late fee')} ({_money(tally.fees)})")
    if tally.calls:
        parts.append(f"{_count(tally.calls, 'call')} to make")
    if tally.calls_made:
        parts.append(f"{_count(tally.calls_made, 'call')} made")
    if tally.escalations:
        parts.append(f"{tally.escalations} handed over to you")
    if tally.awaiting:
        parts.append(f"{tally.awaiting} waiting for approval")
    collected = (
        f"collected {_money(tally.collected)} ({_count(tally.payments, 'payment')})"
        if tally.payments
        else "collected 0"
    )
    return f"{today.strftime('%a %d %b')}: {', '.join(parts)}; {collected}"


def _newly_waiting(services: Services, seen: set[int]) -> int:
    """Actions that started waiting for a person's approval since last asked (their ids join `seen`)."""
    with services.store.unit_of_work() as uow:
        ids = set(uow.session.scalars(select(Action.id).where(Action.state == "awaiting_approval")))
    new = ids - seen
    seen |= new
    return len(new)


def _duplicates(services: Services) -> int:
    with services.store.unit_of_work() as uow:
        keys = list(uow.session.scalars(select(Action.key).where(Action.state == "done")))
    return len(keys) - len(set(keys))


def _without_nudge(company: _Company, end: date) -> tuple[Decimal, Decimal]:
    """The same seeded world without Nudge, simulated purely: no reminders, so each invoice open when the demo
    began (or issued during it) is paid in full on its payer's own date, or never. (DSO at `end`, collected)
    in the home currency, over the customers' own invoices as `_dso` counts them."""
    home = company.profile.currency
    receivables = collected = Decimal(0)
    for invoice_id, (_, total, currency, _) in company.invoices.items():
        if currency != home or invoice_id in company.paid_before:
            continue
        own = company.habits[invoice_id].own_date
        if own is not None and own <= end:
            collected += total
        else:
            receivables += total
    home_sales = ((issued, amount) for issued, amount, currency in company.issued if currency == home)
    sales = sales_in_period(home_sales, period_end=end, period_days=DEFAULT_PERIOD_DAYS)
    return days_sales_outstanding(receivables, sales, DEFAULT_PERIOD_DAYS), collected


def _plans(services: Services, done: list[Action]) -> tuple[int, int]:
    """(kept, broken) payment plans from the store: broken when Nudge marked it or recorded a plan_broken action;
    kept when Nudge marked it kept or its synced invoice is paid in full without it being broken."""
    broken_keys = {(row.connection_id, row.invoice_external_id) for row in done if row.kind == "plan_broken"}
    kept = broken = 0
    with services.store.unit_of_work() as uow:
        for plan in uow.session.scalars(select(PaymentPlan)):
            subject = (plan.connection_id, plan.invoice_external_id)
            if plan.state == "broken" or subject in broken_keys:
                broken += 1
                continue
            balance = uow.session.scalar(
                select(Invoice.balance).where(
                    Invoice.connection_id == plan.connection_id, Invoice.external_id == plan.invoice_external_id
                )
            )
            if plan.state == "kept" or balance == 0:
                kept += 1
    return kept, broken


def _payments_synced(services: Services) -> int:
    """Rows in the payments table (0 while the store has none)."""
    if not inspect(services.store.engine).has_table("payments"):
        return 0
    with services.store.unit_of_work() as uow:
        return int(uow.session.execute(text("SELECT COUNT(*) FROM payments")).scalar_one())


def _ledger_writes(company: _Company) -> dict[str, int]:
    """What Nudge wrote back to the company's ledger (the kit's count), with the notes counted one per note: by
    Nudge's marker on the customers' invoices (Xero keeps a long note as several history records)."""
    writes = dict(company.kit.ledger_writes(company.tenant))
    writes["notes"] = sum(
        company.kit.note_count(company.tenant, invoice_id, NOTE_MARKER)
        for invoice_id in [*company.invoices, *company.story_invoices]
    )
    return writes


def _ledger_excess(services: Services, companies: list[_Company], writes: dict[str, dict[str, int]]) -> int:
    """Notes and fee invoices in the ledgers beyond what the done actions wrote: effects carried out twice.

    A ledger note is written by a done note action (a step's note, a completed call's outcome) and beside every
    done late fee, discount credit and fee reversal (unless the ledger refused it: the row's `error` says so)."""
    excess = 0
    with services.store.unit_of_work() as uow:
        for company in companies:
            done = dict(
                uow.session.execute(
                    select(Action.kind, func.count())
                    .where(Action.connection_id == company.connection_id, Action.state == "done")
                    .group_by(Action.kind)
                ).all()
            )
            write_notes = uow.session.scalar(
                select(func.count()).where(
                    Action.connection_id == company.connection_id,
                    Action.state == "done",
                    Action.kind.in_(LEDGER_WRITE_KINDS),
                    Action.error == "",
                )
            )
            ledger = writes[company.profile.name]
            excess += max(0, ledger.get("notes", 0) - done.get("note", 0) - int(write_notes or 0))
            excess += max(0, ledger.get("fee_invoices", 0) - done.get("late_fee", 0))
    return excess


def _report(
    services: Services,
    companies: list[_Company],
    end: date,
    reminded_paid: int,
    duplicates: int,
    careful: CarefulNumbers,
) -> dict[str, Any]:
    """What `demo-out/summary.json` holds: counts from the store and the ledgers, DSO and collections with and
    without Nudge per company (money in the company's home currency, named in its "currency" key), and the
    careful-by-default numbers (providers._emulator.demo_truth)."""
    with services.store.unit_of_work() as uow:
        done = list(uow.session.scalars(select(Action).where(Action.state == "done")))
    kinds: defaultdict[str, int] = defaultdict(int)
    for row in done:
        kinds[row.kind] += 1
    write_notes = sum(1 for row in done if row.kind in LEDGER_WRITE_KINDS and not row.error)
    kept, broken = _plans(services, done)
    rows = []
    for company in companies:
        dso_without, collected_without = _without_nudge(company, end)
        rows.append(
            {
                "name": company.profile.name,
                "provider": company.profile.provider,
                "currency": company.profile.currency,
                "dso_with_nudge": float(_dso(company, end)),
                "dso_without_nudge": float(dso_without),
                "collected_with_nudge": float(company.collected),
                "collected_without_nudge": float(collected_without),
            }
        )
    return {
        "reminders_sent": kinds["remind"],
        "notes_written": kinds["note"] + write_notes,
        "late_fees_charged": kinds["late_fee"],
        "fees_reversed": kinds["fee_reversal"],
        "discount_credits": kinds["discount_credit"],
        "payments_synced": _payments_synced(services),
        "plans_kept": kept,
        "plans_broken": broken,
        "reminders_about_paid_invoices": reminded_paid,
        "duplicate_effects": duplicates,
        **careful.as_report(),
        "companies": rows,
    }


def _inbox(services: Services) -> dict[str, int]:
    """What waits for a person at the end, from the store: actions awaiting approval, and invoices the sync
    quarantined that are still not stored (the summary.json keys; open tasks are counted by demo_truth)."""
    with services.store.unit_of_work() as uow:
        waiting = uow.session.scalar(select(func.count()).where(Action.state == "awaiting_approval"))
        set_aside = set(
            uow.session.execute(
                select(Activity.connection_id, Activity.subject).where(Activity.kind == "sync.quarantined")
            ).all()
        )
        stored = set(uow.session.execute(select(Invoice.connection_id, Invoice.external_id)).all())
    return {"actions_awaiting_approval": int(waiting or 0), "invoices_quarantined": len(set_aside - stored)}


def _summary_lines(summary: DemoSummary) -> list[str]:
    """The closing summary, in the words of a business owner reading it."""
    report = summary.report
    open_tasks = report.get("open_tasks") or {}
    lines = [
        "",
        f"Summary of {summary.days} days ({summary.seconds} s):",
        f"  reminders sent:       {summary.reminders}",
        f"  notes written:        {summary.notes}",
        f"  late fees charged:    {summary.fee_count} ({_money(summary.fees)})",
        f"  fees reversed: {report.get('fees_reversed', 0)}; discount credits: {report.get('discount_credits', 0)}",
        f"  collected:            {_money(summary.collected)} from {summary.payments} payments "
        f"({summary.paid_after_reminder} invoices paid after a reminder)",
        f"  payment plans kept / broken: {report.get('plans_kept', 0)} / {report.get('plans_broken', 0)}; "
        f"payments synced: {report.get('payments_synced', 0)}",
        f"  your tasks:           {open_tasks.get('call', 0)} calls to make, {open_tasks.get('handoff', 0)} "
        f"hand-overs to decide (open); {report.get('tasks_completed', 0)} calls made",
        f"  holds:                {summary.holds}",
    ]
    for company in report.get("companies", []):
        lines.append(
            f"  DSO {company['name']}: {company['dso_with_nudge']} days with Nudge, "
            f"{company['dso_without_nudge']} without; collected {company['collected_with_nudge']:,.2f} "
            f"{company['currency']} with Nudge, {company['collected_without_nudge']:,.2f} without"
        )
    for name, writes in summary.ledger_writes.items():
        lines.append(f"  written back to {name}: {json.dumps(writes)}")
    lines += ["", *page_lines(report.get("customer_page") or {})]
    lines += [
        "",
        "Careful by default (each must be 0):",
        f"  late fees without a warning {WARNING_TEXT}: {report.get('fees_without_prior_warning', 0)}",
        f"  late fees on the first day: {report.get('late_fees_on_day_one', 0)}",
        f"  customers whose first message was a final notice: {report.get('first_contacts_final', 0)}",
        f"  reminders sent on a public holiday: {report.get('reminders_on_public_holidays', 0)}",
        *(f"    {line}" for line in summary.holiday_reminders),
        f"  reminders about already-paid invoices: {summary.reminded_paid_invoices}; duplicate effects: "
        f"{summary.duplicate_keys}",
        "",
        f"Emails: {summary.outbox} (one .eml file per reminder); numbers: {summary.report_path}",
        *_browse_lines(summary),
    ]
    return lines


def _browse_lines(summary: DemoSummary) -> list[str]:
    """How to open the demo's world in the web app, and what waits in its inbox (counted from the store)."""
    report = summary.report
    open_tasks = report.get("open_tasks") or {}
    waiting = [
        _count(report.get("actions_awaiting_approval", 0), "action") + " to approve",
        _count(open_tasks.get("call", 0), "call") + " to make",
        _count(open_tasks.get("handoff", 0), "hand-over") + " to decide",
        _count(report.get("invoices_quarantined", 0), "quarantined invoice"),
    ]
    lines = [
        "",
        "Browse it (the web app on this demo's database):",
        f"  NUDGE_CONFIG={summary.config} nudge serve",
    ]
    hint = _nudge_hint()
    if hint:
        lines.append(f"  ({hint})")
    return [
        *lines,
        f"  then open {DEMO_URL} and sign in as {DEMO_EMAIL} with the password {DEMO_PASSWORD}",
        f"  waiting in the inbox: {', '.join(waiting)}",
    ]


def _nudge_hint() -> str:
    """Where this `nudge` is when the shell would not find it on PATH ("" when it would, or when not run as nudge)."""
    running = Path(sys.argv[0]) if sys.argv and Path(sys.argv[0]).name == "nudge" else None
    if running is None:
        return ""
    found = shutil.which("nudge")
    if found is not None and Path(found).resolve() == running.resolve():
        return ""
    try:
        shown = running.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = running.resolve()
    return f"nudge is not on your PATH: run {shown} in its place, or activate its virtualenv first"


WARNING_TEXT = "sent a week before"


def _review_lines(review: Review) -> list[str]:
    """An onboarding review in brief, as `nudge review` lists it in full: what would go out and what is held."""
    kinds: Counter[str] = Counter()
    reminded_customers = 0
    for customer in review.customers:
        for group in customer.groups:
            kinds[group.kind.value] += len(group.items)
        reminded_customers += any(group.kind.value == "remind" for group in customer.groups)
    asked = {t.currency: t.reminded.amount for t in review.totals}
    fees = {t.currency: t.fees.amount for t in review.totals}
    reasons: Counter[str] = Counter(hold.reason for customer in review.customers for hold in customer.holds)
    held = ", ".join(f"{_count(count, 'invoice')} ({reason})" for reason, count in sorted(reasons.items()))
    charge = f"{_count(kinds['late_fee'], 'late fee')} ({_money(fees)})" if kinds["late_fee"] else "no late fees"
    tasks = [
        _count(kinds[kind], noun) for kind, noun in (("call_task", "call"), ("escalate", "hand-over")) if kinds[kind]
    ]
    return [
        f"  review of {review.name} (nothing sent or written yet):",
        f"    would send {_count(kinds['remind'], 'reminder')} to {_count(reminded_customers, 'customer')} about "
        f"{_money(asked)} overdue, write {_count(kinds['note'], 'ledger note')}, charge {charge}"
        + (f", give you {' and '.join(tasks)}" if tasks else ""),
        f"    held back: {held or 'nothing'}",
    ]


def _make_calls(services: Services, today: date, days_off: list[HolidayCalendar]) -> int:
    """On working days (weekdays that are no public holiday in `days_off`) the accountant makes every other call
    whose task fell due at least a day ago and records what was said (`nudge tasks done ID --note ...`); the rest
    stay open for the summary. Returns the calls made."""
    if today.weekday() >= 5 or any(calendar.is_holiday(today) for calendar in days_off):
        return 0
    made = 0
    for task in list_tasks(services.store):
        if task.kind == CALL and task.id % 2 == 1 and task.due_on <= today - timedelta(days=CALL_AFTER_DAYS):
            complete_task(services.store, task.id, DEMO_EMAIL, CALL_OUTCOME, services.clock.now())
            made += 1
    return made
