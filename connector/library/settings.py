"""Each client's (connection's) own settings and the organization's defaults, as people read and change them.

A client setting left empty inherits: the cadence from the organization's default cadence (then the
install's first); the time zone and holiday calendar from the cadence when it names them, else from the
ledger; the send window, approval mode and minimum amounts from the cadence; the locale and Reply-To from
the install; the business name from the ledger's name and the From name from the business name. Whether what
customers say on their page (issue 17) is also written to the ledger as a note is off unless the client turns it on.
`client_settings` shows every effective value with where it comes from; `update_client_settings` checks
every field (InvalidInput naming it), saves, and records an audit entry (before/after) and an activity in
the same unit of work. docs/settings.md explains each setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm.attributes import flag_modified

from connector.config import Settings
from connector.domain.calendar import zone
from connector.domain.policy import Cadence, PolicySet
from connector.errors import InvalidInput, UnknownRecord
from connector.library import audit, inputs
from connector.library.resolve import CADENCE, OrgLibrary, library_for
from connector.mail.rendering import DEFAULT_LOCALE
from connector.storage import Store, UnitOfWork
from connector.storage.tables import ClientSettings, Connection, LibraryItem, Organization

FIELDS = (
    "cadence_id",
    "time_zone",
    "holiday_calendar",
    "send_window",
    "approval",
    "minimum_amounts",
    "locale",
    "business_name",
    "from_name",
    "reply_to",
    "customer_page_ledger_notes",
)
APPROVALS = ("", "none", "ledger", "all")
ORGANIZATION_FIELDS = ("default_cadence_id",)
DEFAULT_CADENCE_KEY = "default_cadence_id"

# Where an effective value comes from.
CLIENT = "client"  # set on this client
LEGACY = "client_legacy"  # the client's cadence by name, from before the library (Connection.cadence)
ORGANIZATION = "organization"  # the organization's default
LEDGER = "ledger"  # the connected ledger (its zone, country, name)
CADENCE_SOURCE = "cadence"  # the client's cadence
INSTALL = "install"  # the install's configuration
BUSINESS_NAME = "business_name"  # the From name falls back to the client's business name
NONE = "none"  # nothing anywhere (e.g. no holiday calendar)


@dataclass(frozen=True)
class InstallDefaults:
    """What the install's configuration gives every organization: starter rules, the mail sender, a locale."""

    rules: PolicySet = field(default_factory=PolicySet)
    from_name: str = ""
    reply_to: str = ""
    locale: str = DEFAULT_LOCALE

    @classmethod
    def of(cls, settings: Settings) -> InstallDefaults:
        """The defaults of a loaded configuration."""
        return cls(settings.rules, settings.mail.from_name, settings.mail.reply_to)


@dataclass(frozen=True, slots=True)
class Effective:
    """One effective setting: its value and where it comes from (CLIENT when set on the client)."""

    value: Any
    source: str

    @property
    def inherited(self) -> bool:
        """True when the client does not set it itself."""
        return self.source != CLIENT


@dataclass(frozen=True)
class ClientSettingsView:
    """A client's stored settings ("" / None / {} = inherit), the effective ones, and problems to fix."""

    organization_id: int
    connection_id: int
    client_name: str
    stored: Mapping[str, Any]
    effective: Mapping[str, Effective]
    updated_at: datetime | None = None
    problems: tuple[str, ...] = ()  # e.g. a cadence id that no longer resolves (the fallback is shown)

    def inherited(self) -> tuple[str, ...]:
        """The fields the client does not set itself."""
        return tuple(name for name, found in self.effective.items() if found.inherited)


@dataclass(frozen=True)
class OrganizationSettingsView:
    """The organization's defaults: its default cadence (id and current name; None: the install's first)."""

    organization_id: int
    default_cadence_id: int | None
    default_cadence_name: str | None
    effective_cadence_name: str | None


def _connection(uow: UnitOfWork, organization_id: int, connection_id: int) -> Connection:
    ids_ok = inputs.is_row_id(organization_id) and inputs.is_row_id(connection_id)
    found = uow.connections.get(organization_id, connection_id) if ids_ok else None
    if found is None:
        raise UnknownRecord(f"no client {connection_id} in this organization", "connection_id")
    return found


def _stored(row: ClientSettings | None) -> dict[str, Any]:
    if row is None:
        return {
            "cadence_id": None,
            "time_zone": "",
            "holiday_calendar": "",
            "send_window": None,
            "approval": "",
            "minimum_amounts": {},
            "locale": "",
            "business_name": "",
            "from_name": "",
            "reply_to": "",
            "customer_page_ledger_notes": False,
        }
    return {
        "cadence_id": row.cadence_id,
        "time_zone": row.time_zone,
        "holiday_calendar": row.holiday_calendar,
        "send_window": dict(row.send_window) if row.send_window else None,
        "approval": row.approval,
        "minimum_amounts": dict(row.minimum_amounts or {}),
        "locale": row.locale,
        "business_name": row.business_name,
        "from_name": row.from_name,
        "reply_to": row.reply_to,
        "customer_page_ledger_notes": row.customer_page_ledger_notes,
    }


def _default_cadence_id(organization: Organization | None) -> int | None:
    raw = (organization.settings or {}).get(DEFAULT_CADENCE_KEY) if organization is not None else None
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _calendar_code(country: str | None, subdiv: str | None) -> str:
    """A holiday calendar as stored: "CC" or "CC-SUBDIV" ("" for none)."""
    return "-".join(part for part in (country, subdiv) if part)


def _window_of(cadence: Cadence) -> dict[str, Any]:
    window = cadence.window
    return {
        "days": sorted(window.weekdays),
        "start": window.start.strftime("%H:%M"),
        "end": window.end.strftime("%H:%M"),
    }


def _cadence(
    library: OrgLibrary, organization: Organization | None, connection: Connection, stored: Mapping[str, Any]
) -> tuple[Effective, list[str]]:
    """The client's cadence ({"id", "name"}) and where it comes from, as the planner picks it."""
    problems: list[str] = []
    own = stored["cadence_id"]
    if own is not None:
        name = library.cadence_name(own)
        if name is not None:
            return Effective({"id": own, "name": name}, CLIENT), problems
        problems.append(f"cadence {own} set on this client no longer exists; the client follows the fallback below")
    if connection.cadence and connection.cadence in library.rules.cadences:
        legacy = {"id": library.item_id(CADENCE, connection.cadence), "name": connection.cadence}
        return Effective(legacy, LEGACY), problems
    default_id = _default_cadence_id(organization)
    default_name = library.cadence_name(default_id)
    if default_name is not None:
        return Effective({"id": default_id, "name": default_name}, ORGANIZATION), problems
    first = next(iter(library.rules.cadences), None)
    if first is None:
        return Effective(None, NONE), problems
    return Effective({"id": library.item_id(CADENCE, first), "name": first}, INSTALL), problems


def client_settings(
    uow: UnitOfWork, org_id: int, connection_id: int, defaults: InstallDefaults | None = None
) -> ClientSettingsView:
    """Client `connection_id`'s stored and effective settings (UnknownRecord when not a client of `org_id`)."""
    defaults = defaults or InstallDefaults()
    connection = _connection(uow, org_id, connection_id)
    row = uow.session.get(ClientSettings, connection_id)
    stored = _stored(row)
    organization = uow.organizations.get(org_id)
    library = library_for(uow, org_id, defaults.rules)
    cadence_setting, problems = _cadence(library, organization, connection, stored)
    cadence = library.rules.cadences.get(cadence_setting.value["name"]) if cadence_setting.value else None

    def own_or(name: str, fallback: Any, source: str) -> Effective:
        value = stored[name]
        return Effective(value, CLIENT) if value not in ("", None, {}) else Effective(fallback, source)

    ledger_calendar = _calendar_code(connection.holiday_country, connection.holiday_subdiv)
    cadence_minimums = {code: str(value) for code, value in (cadence.minimum_by_currency if cadence else {}).items()}
    business = own_or("business_name", connection.name, LEDGER)
    from_fallback = (business.value, BUSINESS_NAME if stored["business_name"] else LEDGER)
    effective = {
        "cadence_id": cadence_setting,
        "time_zone": (
            own_or("time_zone", cadence.time_zone, CADENCE_SOURCE)
            if cadence is not None and cadence.time_zone
            else own_or("time_zone", connection.time_zone or "UTC", LEDGER)
        ),
        "holiday_calendar": (
            own_or(
                "holiday_calendar", _calendar_code(cadence.holidays.country, cadence.holidays.subdiv), CADENCE_SOURCE
            )
            if cadence is not None and cadence.holidays is not None
            else own_or("holiday_calendar", ledger_calendar, LEDGER if ledger_calendar else NONE)
        ),
        "send_window": own_or("send_window", _window_of(cadence) if cadence else None, CADENCE_SOURCE),
        "approval": own_or("approval", cadence.approval.value if cadence else "none", CADENCE_SOURCE),
        "minimum_amounts": (
            Effective({**cadence_minimums, **stored["minimum_amounts"]}, CLIENT)
            if stored["minimum_amounts"]
            else Effective(cadence_minimums, CADENCE_SOURCE)
        ),
        "locale": own_or("locale", defaults.locale, INSTALL),
        "business_name": business,
        "from_name": own_or("from_name", *from_fallback),
        "reply_to": own_or("reply_to", defaults.reply_to, INSTALL),
        # off unless the client turns it on (off is the install's default, not a choice of the client)
        "customer_page_ledger_notes": own_or("customer_page_ledger_notes", False, INSTALL)
        if stored["customer_page_ledger_notes"]
        else Effective(False, INSTALL),
    }
    return ClientSettingsView(
        org_id,
        connection_id,
        connection.name,
        stored,
        effective,
        row.updated_at if row is not None else None,
        tuple(problems),
    )


def _approval(value: Any, field: str) -> str:
    if value is None:
        return ""
    if value not in APPROVALS:
        raise InvalidInput(f"{field} must be one of: none, ledger, all (or empty for the cadence's)", field)
    return str(value)


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "time_zone": inputs.time_zone,
    "holiday_calendar": inputs.holiday_calendar,
    "send_window": inputs.send_window,
    "approval": _approval,
    "minimum_amounts": inputs.minimum_amounts,
    "locale": inputs.locale,
    "business_name": inputs.text,
    "from_name": inputs.text,
    "reply_to": inputs.optional_address,
    "customer_page_ledger_notes": inputs.flag,
}


def check_changes(uow: UnitOfWork, org_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` checked field by field (InvalidInput naming the first wrong one), as they will be stored."""
    if not isinstance(changes, Mapping):
        raise InvalidInput("send an object of the settings to change", "")
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "cadence_id":
            item = inputs.live_cadence(uow, org_id, value, name)
            checked[name] = item.id if item is not None else None
        elif name in _CHECKS:
            checked[name] = _CHECKS[name](value, name)
        else:
            raise InvalidInput(f"unknown setting {name!r} (known: {', '.join(FIELDS)})", str(name)[:100])
    return checked


def update_client_settings(
    store: Store,
    org_id: int,
    connection_id: int,
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
    defaults: InstallDefaults | None = None,
) -> ClientSettingsView:
    """Change some of client `connection_id`'s settings (None / "" clears one: it inherits again); nothing is
    saved when any field is wrong. Audited (before/after) with an activity `client_settings.updated`."""
    with store.unit_of_work() as uow:
        connection = _connection(uow, org_id, connection_id)
        checked = check_changes(uow, org_id, changes)
        row = uow.session.get(ClientSettings, connection_id)
        before = _stored(row)
        created = row is None
        if row is None:
            row = ClientSettings(connection_id=connection_id)
            uow.session.add(row)
        for name, value in checked.items():
            setattr(row, name, value)
        row.updated_at = now
        after = {**before, **checked}
        legacy = connection.cadence
        if "cadence_id" in checked and legacy:
            # The id now decides; a leftover legacy name would otherwise win over the organization's default.
            connection.cadence = ""
            before = {**before, "legacy_cadence": legacy}
        changed = sorted(name for name in FIELDS if before.get(name) != after.get(name))
        if changed or "legacy_cadence" in before:
            audit.record(
                uow,
                organization_id=org_id,
                connection_id=connection_id,
                actor=actor,
                at=now,
                entity="client_settings",
                entity_id=connection_id,
                change="create" if created else "update",
                before=None if created and "legacy_cadence" not in before else before,
                after=after,
            )
            uow.activities.record(
                org_id,
                "client_settings.updated",
                connection.name[:200],
                connection_id=connection_id,
                actor=actor,
                at=now,
                detail={"changed": changed, "before": audit.plain(before), "after": audit.plain(after)},
            )
        uow.commit()
        return client_settings(uow, org_id, connection_id, defaults)


def organization_settings(
    uow: UnitOfWork, org_id: int, defaults: InstallDefaults | None = None
) -> OrganizationSettingsView:
    """The organization's defaults (UnknownRecord when there is no such organization)."""
    organization = uow.organizations.get(org_id) if inputs.is_row_id(org_id) else None
    if organization is None:
        raise UnknownRecord(f"no organization {org_id}", "org_id")
    library = library_for(uow, org_id, (defaults or InstallDefaults()).rules)
    own = _default_cadence_id(organization)
    name = library.cadence_name(own)
    effective = name if name is not None else next(iter(library.rules.cadences), None)
    return OrganizationSettingsView(org_id, own, name, effective)


def update_organization_settings(
    store: Store,
    org_id: int,
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
    defaults: InstallDefaults | None = None,
) -> OrganizationSettingsView:
    """Change the organization's defaults (`default_cadence_id`: a live library cadence, or None for the
    install's first). Audited with an activity `organization_settings.updated`."""
    with store.unit_of_work() as uow:
        organization = uow.organizations.get(org_id) if inputs.is_row_id(org_id) else None
        if organization is None:
            raise UnknownRecord(f"no organization {org_id}", "org_id")
        if not isinstance(changes, Mapping):
            raise InvalidInput("send an object of the settings to change", "")
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in ORGANIZATION_FIELDS:
                known = ", ".join(ORGANIZATION_FIELDS)
                raise InvalidInput(f"unknown setting {name!r} (known: {known})", str(name)[:100])
            item: LibraryItem | None = inputs.live_cadence(uow, org_id, value, name)
            checked[name] = item.id if item is not None else None
        before = {DEFAULT_CADENCE_KEY: _default_cadence_id(organization)}
        after = {**before, **checked}
        if after != before:
            settings = dict(organization.settings or {})
            settings.update(checked)
            organization.settings = settings
            flag_modified(organization, "settings")
            audit.record(
                uow,
                organization_id=org_id,
                actor=actor,
                at=now,
                entity="organization_settings",
                entity_id=org_id,
                change="update",
                before=before,
                after=after,
            )
            uow.activities.record(
                org_id,
                "organization_settings.updated",
                organization.name[:200],
                actor=actor,
                at=now,
                detail={"changed": sorted(checked), "before": before, "after": after},
            )
        uow.commit()
        return organization_settings(uow, org_id, defaults)


def client_zone(uow: UnitOfWork, connection: Connection) -> str:
    """The client's effective IANA zone: its own setting, else the ledger's, else UTC."""
    row = uow.session.get(ClientSettings, connection.id)
    return (row.time_zone if row is not None and row.time_zone else "") or connection.time_zone or "UTC"


def client_today(uow: UnitOfWork, connection: Connection, now: datetime) -> date:
    """Today's date in the client's effective zone (what "not in the past" means for its dates)."""
    return now.astimezone(zone(client_zone(uow, connection))).date()
