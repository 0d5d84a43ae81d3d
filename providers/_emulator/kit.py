"""One `EmulatorKit` per provider: the single way the demo, the contract suite, the integration tests
and the benches drive a provider's emulator. Kits are found through the `nudge.emulators` entry-point
group (one kit class per provider key); a development install has them, a production wheel has none.

A kit runs its emulator in this process (`start()`), or in a child process (`start(process=True)`,
for benches that measure the client's memory alone). Everything the admin API offers works in both
modes; the methods that read or seed the emulator's state directly (marked "in-process") need the
emulator in this process and raise RuntimeError otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import requests

from connector.ports import ProviderSettings
from providers._emulator.core import EmulatorCore, Fault

GROUP = "nudge.emulators"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PostalAddress:
    """A customer's billing address and phone, as a seeded ledger holds it (each kit writes its own shape)."""

    lines: tuple[str, ...]
    city: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""


class EmulatorKit(Protocol):
    """Everything a caller needs from one provider's emulator (docs/design.md "Emulators")."""

    provider: str  # the provider key (`providers.<provider>.PROVIDER`)
    currency: str  # home currency of a company added without one
    access_token_lifetime: timedelta  # how long the emulator's access tokens live
    # Client options suited to an emulator whose days pass in seconds (short retry waits, no client-side budget).
    compressed_time_options: Mapping[str, Any]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, port: int = 0, process: bool = False) -> None:
        """Serve the emulator on 127.0.0.1:`port` (0: any free port), in this process or a child process."""
        ...

    def stop(self) -> None:
        """Stop the emulator (idempotent)."""
        ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    @property
    def url(self) -> str:
        """The emulator's base URL."""
        ...

    @property
    def core(self) -> EmulatorCore:
        """Clock, call log, faults and limits of an in-process emulator."""
        ...

    @staticmethod
    def main(argv: list[str]) -> int:
        """Serve the emulator from a shell until interrupted (`nudge emulator <provider> --help`)."""
        ...

    # -- Nudge's side ----------------------------------------------------------------------------
    def settings(self, redirect_uri: str, *, webhook_key: str = "", **options: Any) -> ProviderSettings:
        """Provider settings pointing Nudge at this emulator, with `options` as the provider options."""
        ...

    def approve(self, authorize_url: str, tenants: list[str]) -> dict[str, str]:
        """What the user's browser does on the consent page: pick `tenants`, approve; the callback's query."""
        ...

    def grant(self, tenant: str) -> dict[str, Any]:
        """Consent without the browser: the token endpoint's JSON body for `tenant`."""
        ...

    # -- the ledger ------------------------------------------------------------------------------
    def add_company(
        self,
        name: str,
        currency: str = "",
        *,
        utc_offset_hours: int | None = None,
        foreign_currencies: bool = False,
        country: str = "",
        subdivision: str = "",
        time_zone: str = "",
    ) -> str:
        """A new, empty company (in-process); returns its tenant id. `country` (ISO alpha-2), `subdivision` (the
        address's state or region code) and `time_zone` (IANA) say where it is ("": the emulator's default, US
        at a fixed UTC-7 for QuickBooks, NZ in Pacific/Auckland for Xero; `utc_offset_hours` is QuickBooks' only)."""
        ...

    def add_customer(
        self, tenant: str, name: str, email: str, currency: str = "", *, address: PostalAddress | None = None
    ) -> str:
        """A customer with an email address (and a billing address and phone) (in-process, no webhook); its id."""
        ...

    def add_invoice(
        self, tenant: str, customer: str, number: str, amount: Decimal, currency: str, issued: date, due: date
    ) -> str:
        """An open one-line invoice (in-process, no webhook); returns its id."""
        ...

    def seed_invoices(self, tenant: str, count: int) -> list[str]:
        """`count` open invoices of one new customer with an email, due 2024-01-31 (in-process); their ids."""
        ...

    def seed_company(self, name: str, *, customers: int, invoices: int) -> str:
        """A company with `customers` customers and `invoices` open invoices (admin API); its tenant id."""
        ...

    def pay(self, tenant: str, invoice: str, amount: Decimal | None = None, on: date | None = None) -> str:
        """A customer pays `amount` (None: the whole balance) on `on` (None: the emulator's today).

        Returns the ledger's payment object id (QuickBooks Payment, Xero Payment)."""
        ...

    def credit(self, tenant: str, invoice: str, amount: Decimal, on: date | None = None) -> str:
        """A user credits `amount` to the invoice in the ledger (QuickBooks CreditMemo, Xero CreditNote
        allocated to it), dated `on`; the credit object's id."""
        ...

    def overpay(self, tenant: str, customer: str, amount: Decimal, on: date | None = None) -> str:
        """The customer pays `amount` that no invoice takes (QuickBooks unapplied Payment, Xero
        Overpayment); the payment object's id."""
        ...

    def void_payment(self, tenant: str, payment: str) -> None:
        """A user voids or deletes a payment object in the ledger (its invoices owe that money again)."""
        ...

    def touch_invoice(self, tenant: str, invoice: str) -> None:
        """A user edits the invoice in the ledger without changing its amount."""
        ...

    def annotate_invoice(self, tenant: str, invoice: str, text: str) -> None:
        """A user writes `text` where Nudge keeps its fee marker (QuickBooks PrivateNote, Xero Reference)."""
        ...

    def balance(self, tenant: str, invoice: str) -> Decimal:
        """The invoice's open balance (in-process)."""
        ...

    def ledger_writes(self, tenant: str) -> dict[str, int]:
        """What Nudge wrote back (in-process): {"notes", "fee_invoices", "credits"}."""
        ...

    def note_count(self, tenant: str, invoice: str, text: str) -> int:
        """How often `text` appears in the invoice's notes (in-process)."""
        ...

    # -- OAuth -----------------------------------------------------------------------------------
    def expire_access_tokens(self, tenant: str) -> None:
        """The access tokens reaching `tenant` are expired from now on (refresh tokens unaffected)."""
        ...

    def strict_refresh(self) -> None:
        """A refresh token dies at its first use (no grace period for a concurrent second use)."""
        ...

    def token_calls(self) -> int:
        """Calls the token endpoint answered so far (in-process)."""
        ...

    def forget_idempotency(self, tenant: str) -> None:
        """The provider forgets the idempotency keys it saw for `tenant` (in-process)."""
        ...

    # -- webhooks --------------------------------------------------------------------------------
    def webhook_body(self, tenant: str, invoice: str) -> bytes:
        """A webhook delivery announcing an update of the invoice, as the provider sends it."""
        ...

    def sign_webhook(self, body: bytes, key: str) -> str:
        """The signature header value the provider sends with `body` under webhook key `key`."""
        ...

    # -- time, faults, limits, call log (shared admin API) ----------------------------------------
    def set_now(self, moment: datetime) -> None:
        """Freeze the emulator's clock at `moment` (aware)."""
        ...

    def add_fault(self, fault: Fault) -> None:
        """Arm one fault (see `Fault`)."""
        ...

    def clear_faults(self) -> None: ...

    def set_latency(self, seconds: float) -> None:
        """Added latency before every data call."""
        ...

    def set_limits(
        self, *, per_minute: int = 0, concurrent: int = 0, per_day: int = 0, app_per_minute: int = 0
    ) -> None:
        """Per-tenant rate and concurrency limits (0: off)."""
        ...

    def calls(self, category: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        """The call log (admin API): one dict per answered request (`CallRecord` fields)."""
        ...

    def clear_calls(self) -> None: ...

    def data_calls(self, tenant: str | None = None) -> int:
        """API data calls answered so far (for `tenant`, or all)."""
        ...


# -- a local install against the emulators (`nudge init --emulators`, `nudge dev`) ------------------------
@dataclass(frozen=True)
class LocalSetup:
    """What `nudge init --emulators` writes for one emulator: its fixed port, the provider block of nudge.yaml
    (secrets as `${VARIABLE}`) and the variables' values for `.env` (the emulator's own fixture values)."""

    provider: str
    port: int
    block: dict[str, Any]
    env: dict[str, str]


# -- what every kit shares ---------------------------------------------------------------------------
class ChildEmulator:
    """An emulator served by `python -m <module>` in a child process (stopped with SIGTERM)."""

    def __init__(self, module: str, banner: str, port: int, arguments: list[str]) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", module, "--port", str(self.port), *arguments]
        # Our own interpreter running our own emulator module: no untrusted input reaches the command.
        self._process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self._process.stdout.readline().decode()
            if banner in line:
                return
            if not line and self._process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{module} did not start")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KitBase:
    """Lifecycle and the shared admin API (clock, faults, latency, limits, calls) for provider kits.

    A provider kit sets `_serve_here` (start in this process; returns an object with `url`, `core` and
    `stop()`) and `_child` (start `python -m <emulator>`), then adds the provider-specific methods.
    """

    provider = ""
    token_path = ""  # the token endpoint's path (exchange and refresh)

    def __init__(self, *, rate_limits: bool = True) -> None:
        self.rate_limits = rate_limits
        self._here: Any = None
        self._child: ChildEmulator | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def _serve_here(self, port: int) -> Any:
        raise NotImplementedError

    def _serve_child(self, port: int) -> ChildEmulator:
        raise NotImplementedError

    def start(self, *, port: int = 0, process: bool = False) -> None:
        if self._here is not None or self._child is not None:
            raise RuntimeError(f"the {self.provider} emulator is already started")
        if process:
            self._child = self._serve_child(port)
        else:
            self._here = self._serve_here(port)

    def stop(self) -> None:
        here, child, self._here, self._child = self._here, self._child, None, None
        if here is not None:
            here.stop()
        if child is not None:
            child.stop()

    def __enter__(self) -> Self:
        if self._here is None and self._child is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def handle(self) -> Any:
        """The in-process emulator's handle (provider-specific state for provider-specific tests)."""
        if self._here is None:
            where = "in a child process" if self._child is not None else "not started"
            raise RuntimeError(f"the {self.provider} emulator is {where}; this needs it in this process")
        return self._here

    @property
    def url(self) -> str:
        if self._child is not None:
            return self._child.url
        return str(self.handle.url)

    @property
    def core(self) -> EmulatorCore:
        core: EmulatorCore = self.handle.core
        return core

    # -- admin API -------------------------------------------------------------------------------
    def admin(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        method: str = "POST",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Call the emulator's admin API (`/__admin/<path>`); the decoded JSON answer."""
        answer = requests.request(method, f"{self.url}/__admin/{path}", json=body, params=params, timeout=120)
        answer.raise_for_status()
        return answer.json()

    def set_now(self, moment: datetime) -> None:
        if self._here is not None:
            self.core.clock.set(moment, frozen=True)  # the demo moves the clock hundreds of times
        else:
            self.admin("clock", {"now": moment.isoformat(), "frozen": True})

    def add_fault(self, fault: Fault) -> None:
        if self._here is not None:
            self.core.add_fault(fault)  # the caller keeps the object and watches it fire
        else:
            fields = ("kind", "path", "method", "status", "body", "seconds", "times", "every", "headers")
            self.admin("faults", {name: getattr(fault, name) for name in fields})

    def clear_faults(self) -> None:
        self.admin("faults", method="DELETE")

    def set_latency(self, seconds: float) -> None:
        self.admin("latency", {"seconds": seconds})

    def set_limits(
        self, *, per_minute: int = 0, concurrent: int = 0, per_day: int = 0, app_per_minute: int = 0
    ) -> None:
        limits = {"per_minute": per_minute, "concurrent": concurrent, "per_day": per_day}
        self.admin("limits", {**limits, "app_per_minute": app_per_minute})

    def calls(self, category: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        params = {name: value for name, value in (("category", category), ("tenant", tenant)) if value is not None}
        return list(self.admin("calls", method="GET", params=params)["calls"])

    def clear_calls(self) -> None:
        self.admin("calls", method="DELETE")

    def data_calls(self, tenant: str | None = None) -> int:
        if self._here is not None:
            return len(self.core.calls("data", tenant))
        return len(self.calls("data", tenant))

    def token_calls(self) -> int:
        return sum(1 for call in self.core.calls() if call.path.endswith(self.token_path))

    def point_webhooks(self, url: str, key: str) -> None:
        """Deliver the emulator's webhooks to `url`, signed with `key` (the provider's admin call)."""
        raise NotImplementedError


# -- discovery ---------------------------------------------------------------------------------------
def emulator_names() -> list[str]:
    """Provider keys whose emulator is installed."""
    return sorted(entry.name for entry in entry_points(group=GROUP))


def emulator_kit(name: str, **options: Any) -> EmulatorKit:
    """A fresh, stopped kit for provider `name`'s emulator (`options` go to its constructor, e.g.
    `rate_limits=False`); LookupError when none is installed."""
    for entry in entry_points(group=GROUP):
        if entry.name == name:
            kit: EmulatorKit = entry.load()(**options)
            return kit
    raise LookupError(f"no emulator installed for provider {name!r}")
