"""A client's configuration as the planner, the send gate and the preview apply it (issue 14).

A connection is one client's ledger. What it is chased with comes from its organization's library
(connector.library.resolve) and its `ClientSettings` row; what overrides what:

- cadence of the client: `ClientSettings.cadence_id` (by library id, so a rename never loses it), else the
  legacy `Connection.cadence` name, else the organization's default (`Organization.settings
  ["default_cadence_id"]`), else the install's `default_cadence`, else the library's first cadence. A level
  that names a cadence the library no longer has is passed over and reported (`notices`), never silently
  dropped: chasing goes on with the next level.
- cadence of a customer: `Customer.cadence_id`, else the legacy `Customer.cadence` name, else the client's;
  one that no longer resolves falls back to the client's cadence, reported the same way.
- the client's settings are applied to every cadence it plans with, by building the domain's inputs (the
  domain never reads the database): `time_zone` replaces the ledger's zone and the cadence's own;
  `holiday_calendar` ("CC" or "CC-SUB") the ledger's and the cadence's calendar; `send_window` the cadence's
  window (the send time moves to the window's opening when it falls outside); `approval` ("" keeps the
  cadence's) the cadence's approval; `minimum_amounts` ({currency: amount}) the cadence's minimum for those
  currencies. A customer's own zone and holiday calendar still win over all of these.

Every stored value is read defensively: a value that does not parse (written around the services) is
ignored and reported, never a crash in the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.domain.cadence import ConnectionSettings
from connector.domain.calendar import SendWindow, is_time_zone
from connector.domain.policy import Approval, Cadence, HolidaySpec
from connector.library.resolve import CADENCE, OrgLibrary
from connector.storage import UnitOfWork
from connector.storage.tables import ClientSettings, Connection, Organization

DEFAULT_CADENCE_SETTING = "default_cadence_id"  # Organization.settings key naming the library cadence by id


@dataclass(frozen=True, slots=True)
class Notice:
    """A configured cadence that did not resolve, and what is used instead (recorded in the activity log)."""

    subject: str  # "client" or "customer:<external id>"
    text: str


@dataclass
class ClientPlanning:
    """One client's library, settings and resolved cadence, applied (built once per plan, read per customer)."""

    library: OrgLibrary
    settings: ConnectionSettings
    cadence_name: str  # the client's cadence ("" when the library has no cadence at all)
    client: ClientSettings | None = None
    notices: list[Notice] = field(default_factory=list)
    _applied: dict[str, Cadence | None] = field(default_factory=dict)

    def cadence(self, name: str) -> Cadence | None:
        """The library's cadence `name` with the client's settings applied (None when the library has none)."""
        if name not in self._applied:
            found = self.library.rules.cadences.get(name)
            self._applied[name] = apply_client(found, self.client, self.notices) if found is not None else None
        return self._applied[name]

    def customer_cadence(self, customer_id: str, cadence_id: int | None, legacy_name: str) -> str:
        """The name of a customer's cadence: their cadence id, else their legacy name, else the client's; one that
        no longer resolves falls back to the client's cadence and leaves a notice."""
        if cadence_id is not None:
            name = self.library.cadence_name(cadence_id)
            if name is not None and name in self.library.rules.cadences:
                return name
            self.notices.append(
                Notice(
                    f"customer:{customer_id}",
                    f"the customer's cadence (library item {cadence_id}) no longer exists: "
                    f"chased with the client's cadence {self.cadence_name!r}",
                )
            )
            return self.cadence_name
        if legacy_name:
            if legacy_name in self.library.rules.cadences:
                return legacy_name
            self.notices.append(
                Notice(
                    f"customer:{customer_id}",
                    f"the customer's cadence {legacy_name!r} does not exist: "
                    f"chased with the client's cadence {self.cadence_name!r}",
                )
            )
        return self.cadence_name

    def version_of(self, cadence_name: str) -> int | None:
        """The current library version id of cadence `cadence_name` (None for the unseeded starter rules)."""
        return self.library.version_of(CADENCE, cadence_name)


def client_planning(
    uow: UnitOfWork,
    connection: Connection,
    settings: ConnectionSettings,
    library: OrgLibrary,
    *,
    default_cadence: str = "",
) -> ClientPlanning:
    """The client's planning context: its settings row applied to `settings`, and its cadence resolved."""
    client = uow.session.get(ClientSettings, connection.id)
    notices: list[Notice] = []
    cadences = library.rules.cadences
    chosen = ""
    if client is not None and client.cadence_id is not None:
        name = library.cadence_name(client.cadence_id)
        if name is not None and name in cadences:
            chosen = name
        else:
            notices.append(
                Notice("client", f"the client's cadence (library item {client.cadence_id}) no longer exists")
            )
    if not chosen and connection.cadence:
        if connection.cadence in cadences:
            chosen = connection.cadence
        else:
            notices.append(Notice("client", f"the client's cadence {connection.cadence!r} does not exist"))
    if not chosen:
        chosen = _organization_default(uow, connection.organization_id, library, notices)
    if not chosen and default_cadence in cadences:
        chosen = default_cadence
    if not chosen:
        chosen = next(iter(cadences), "")
    if notices and chosen:
        last = notices[-1]
        notices[-1] = Notice(last.subject, f"{last.text}: chased with {chosen!r}")
    return ClientPlanning(library, apply_client_settings(settings, client, notices), chosen, client, notices)


def _organization_default(uow: UnitOfWork, organization_id: int, library: OrgLibrary, notices: list[Notice]) -> str:
    org = uow.session.get(Organization, organization_id)
    raw = (org.settings or {}).get(DEFAULT_CADENCE_SETTING) if org is not None else None
    if raw is None or raw == "":
        return ""
    try:
        item_id = int(raw)
    except (TypeError, ValueError):
        item_id = None
    name = library.cadence_name(item_id)
    if name is not None and name in library.rules.cadences:
        return name
    notices.append(Notice("client", f"the organization's default cadence ({raw!r}) no longer exists"))
    return ""


def apply_client_settings(
    settings: ConnectionSettings, client: ClientSettings | None, notices: list[Notice] | None = None
) -> ConnectionSettings:
    """The planner's connection settings with the client's zone and holiday calendar in place of the ledger's."""
    if client is None:
        return settings
    changes: dict[str, Any] = {}
    if client.time_zone:
        if is_time_zone(client.time_zone):
            changes["time_zone"] = client.time_zone
        elif notices is not None:
            notices.append(Notice("client", f"the client's time zone {client.time_zone!r} is unknown: ignored"))
    holidays = holiday_spec(client.holiday_calendar)
    if holidays is not None:
        changes["holiday_country"] = holidays.country
        changes["holiday_subdiv"] = holidays.subdiv
    return replace(settings, **changes) if changes else settings


def apply_client(cadence: Cadence, client: ClientSettings | None, notices: list[Notice] | None = None) -> Cadence:
    """`cadence` with the client's zone, holidays, send window, approval and minimum amounts in place of its own."""
    if client is None:
        return cadence
    changes: dict[str, Any] = {}
    if client.time_zone and is_time_zone(client.time_zone):
        changes["time_zone"] = client.time_zone
    holidays = holiday_spec(client.holiday_calendar)
    if holidays is not None:
        changes["holidays"] = holidays
    window = send_window(client.send_window, notices)
    if window is not None:
        changes["window"] = window
        if not window.start <= cadence.send_time < window.end:
            changes["send_time"] = window.start  # the cadence's hour is outside the client's window: its opening
    if client.approval:
        try:
            changes["approval"] = Approval(client.approval)
        except ValueError:
            if notices is not None:
                notices.append(Notice("client", f"the client's approval mode {client.approval!r} is unknown: ignored"))
    minimums = minimum_amounts(client.minimum_amounts, notices)
    if minimums:
        changes["minimum_by_currency"] = {**cadence.minimum_by_currency, **minimums}
    return replace(cadence, **changes) if changes else cadence


def holiday_spec(code: str | None) -> HolidaySpec | None:
    """A holiday calendar written "CC" or "CC-SUB" (None when empty or malformed)."""
    if not code or not isinstance(code, str):
        return None
    country, _, subdiv = code.strip().partition("-")
    if len(country) != 2 or not country.isalpha():
        return None
    return HolidaySpec(country.upper(), subdiv.upper() or None)


def send_window(raw: Any, notices: list[Notice] | None = None) -> SendWindow | None:
    """A stored window {"days": [0..6] or ["mon" ..], "start": "HH:MM", "end": "HH:MM"} (None when absent or
    invalid)."""
    if not raw:
        return None
    try:
        if not isinstance(raw, Mapping):
            raise ValueError("not an object")
        days = raw.get("days", raw.get("weekdays"))
        weekdays = frozenset(_weekday(day) for day in days) if days is not None else SendWindow().weekdays
        start = time.fromisoformat(str(raw.get("start", "08:00")))
        end = time.fromisoformat(str(raw.get("end", "18:00")))
        return SendWindow(weekdays, start, end)
    except (TypeError, ValueError) as exc:
        if notices is not None:
            notices.append(Notice("client", f"the client's send window is invalid ({exc}): the cadence's is used"))
        return None


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday(day: Any) -> int:
    """0 (Monday) .. 6 from an int or a day name as the config writes them ("mon" .. "sun")."""
    if isinstance(day, str) and day[:3].lower() in _DAY_NAMES:
        return _DAY_NAMES.index(day[:3].lower())
    if isinstance(day, bool) or not isinstance(day, int | str):
        raise ValueError(f"unknown weekday {day!r}")
    return int(day)


def minimum_amounts(raw: Any, notices: list[Notice] | None = None) -> dict[str, Decimal]:
    """A stored {currency: amount} as Decimals; entries that do not parse are left out (and reported)."""
    if not isinstance(raw, Mapping):
        return {}
    found: dict[str, Decimal] = {}
    for currency, amount in raw.items():
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            value = Decimal("NaN")
        if isinstance(currency, str) and len(currency) == 3 and value.is_finite() and value >= 0:
            found[currency.upper()] = value
        elif notices is not None:
            notices.append(
                Notice("client", f"the client's minimum amount {currency!r}: {amount!r} is invalid: ignored")
            )
    return found
