"""The settings screens: the organization's defaults with its clients, and each client's own settings.

- `GET/POST /orgs/<org>/settings`: the default cadence (`connector.library.settings.organization_settings` /
  `update_organization_settings`) and the list of clients, each linking to its settings;
- `GET/POST /orgs/<org>/clients/<connection_id>/settings`: the sender customers see (business name, From name,
  Reply-To), time zone, holiday calendar, send window, approval mode, cadence, minimum amounts and locale
  (`client_settings` / `update_client_settings`). An empty field inherits; the page says from where.

Every field is checked by the service's own checks, each on its own, so every wrong field is named in place at
once (with what was typed); nothing is saved unless all are right. Saving flashes what changed. Owners and
accountants edit (the organization's defaults: members who see every client); viewers read; POSTs from
anyone else get 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import holidays
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import two_factor
from connector.domain.model import Role
from connector.errors import InvalidInput, UnknownRecord
from connector.library import items
from connector.library import settings as service
from connector.library.resolve import CADENCE
from connector.receivables.common import visible_connections
from web.access import require_role
from web.extensions import services
from web.wording import sentence

bp = Blueprint("settings_page", __name__)

WRITERS = (Role.OWNER, Role.ACCOUNTANT)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINIMUM_ROWS_MAX = 20  # currency rows one form may send
# A form sent back with its errors is the page itself (200): browsers log any 4xx page as a failed load.
FORM_ERRORS = 200
LABELS = {
    "cadence_id": "cadence",
    "time_zone": "time zone",
    "holiday_calendar": "holiday calendar",
    "send_window": "send window",
    "approval": "approval",
    "minimum_amounts": "minimum amounts",
    "locale": "locale",
    "business_name": "business name",
    "from_name": "From name",
    "reply_to": "Reply-To",
    "customer_page_ledger_notes": "ledger notes of the customer page",
}
SOURCES = {
    service.CLIENT: "set for this client",
    service.LEGACY: "set for this client (by name, from before the library)",
    service.ORGANIZATION: "the organization's default",
    service.LEDGER: "from the ledger",
    service.CADENCE_SOURCE: "from the cadence",
    service.INSTALL: "Nudge's default for this install",
    service.BUSINESS_NAME: "the business name",
    service.NONE: "none",
}
APPROVALS = (
    ("none", "Nothing waits: everything goes out on its own"),
    ("ledger", "Ledger writes wait (late fees, credits, notes); emails go out"),
    ("all", "Everything waits for approval"),
)
LOCALES = ("en_US", "en_GB", "en_CA", "en_AU", "en_NZ", "en_IE", "fr_FR", "fr_CA", "de_DE", "es_ES", "it_IT", "nl_NL")


@dataclass(frozen=True)
class ClientRow:
    """A client in the organization's list."""

    id: int
    name: str
    provider: str


def _actor() -> str:
    return str(current_user.email)


def _defaults() -> service.InstallDefaults:
    return service.InstallDefaults.of(services().settings)


def _visible() -> frozenset[int] | None:
    ids: frozenset[int] | None = g.member_scope.visible_connection_ids()
    return ids


@cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone this system knows, for the time zone field's suggestions."""
    return tuple(sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith("Etc/")))


@cache
def countries() -> tuple[str, ...]:
    """Country codes with a holiday calendar, for the holiday field's suggestions."""
    return tuple(sorted(holidays.list_supported_countries()))


def _cadences(org_id: int) -> list[tuple[int, str]]:
    with services().store.unit_of_work() as uow:
        return [(item.id, item.name) for item in items.list_items(uow, org_id, CADENCE)]


# -- the organization's page ----------------------------------------------------------------------------------


def _render_index(org_id: int, *, error: str = "", chosen: str | None = None, status: int = 200) -> ResponseReturnValue:
    registry = services().registry
    with services().store.unit_of_work() as uow:
        view = service.organization_settings(uow, org_id, _defaults())
        owners_need_two_factor = two_factor.owners_must_use_it(uow, org_id)
        clients = [
            ClientRow(
                c.id,
                c.name or c.tenant_id,
                registry.spec(c.provider).display_name if c.provider in registry else c.provider,
            )
            for c in visible_connections(uow, org_id, _visible())
        ]
    return (
        render_template(
            "settings/index.html",
            view=view,
            clients=clients,
            cadences=_cadences(org_id),
            can_edit=_can_edit_organization(),
            owners_need_two_factor=owners_need_two_factor,
            error=error,
            chosen=chosen
            if chosen is not None
            else ("" if view.default_cadence_id is None else str(view.default_cadence_id)),
        ),
        status,
    )


def _can_edit_organization() -> bool:
    return g.role in WRITERS and _visible() is None


@bp.get("/orgs/<int:org_id>/settings")
def index(org_id: int) -> ResponseReturnValue:
    """The organization's defaults and its clients."""
    return _render_index(org_id)


@bp.post("/orgs/<int:org_id>/settings")
@require_role(*WRITERS)
def update_organization(org_id: int) -> ResponseReturnValue:
    """Change the default cadence (members limited to some clients may not: it applies to every client)."""
    if _visible() is not None:
        abort(403)
    raw = request.form.get("default_cadence_id", "")
    value: Any = None if raw == "" else (int(raw) if raw.isdigit() and len(raw) <= 10 else raw)
    try:
        with services().store.unit_of_work() as uow:
            old = service.organization_settings(uow, org_id, _defaults())
        view = service.update_organization_settings(
            services().store, org_id, {"default_cadence_id": value}, _actor(), services().clock.now(), _defaults()
        )
    except InvalidInput as exc:
        return _render_index(
            org_id, error=plain_error(exc.user_message, exc.field or ""), chosen=raw[:20], status=FORM_ERRORS
        )
    if view.default_cadence_id == old.default_cadence_id:
        flash("Nothing changed.", "info")
    else:
        flash(f"Saved: clients without a cadence of their own now follow {view.effective_cadence_name}.", "success")
    return redirect(url_for("settings_page.index", org_id=org_id), 303)


@bp.post("/orgs/<int:org_id>/settings/two-factor")
@require_role(Role.OWNER)
def update_two_factor_rule(org_id: int) -> ResponseReturnValue:
    """An owner turns "owners must use two-factor" on or off (docs/account-security.md)."""
    wanted = request.form.get("owners_need_two_factor") == "on"
    with services().store.unit_of_work() as uow:
        two_factor.require_for_owners(uow, org_id, wanted)
        uow.commit()
    flash("Owners must now use two-factor sign-in." if wanted else "Two-factor is now each owner's choice.", "success")
    return redirect(url_for("settings_page.index", org_id=org_id), 303)


# -- a client's page ------------------------------------------------------------------------------------------


def _form_of(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields as the stored settings fill them ("" = inherit)."""
    window = stored.get("send_window") or None
    minimums = stored.get("minimum_amounts") or {}
    return {
        "cadence_id": "" if stored.get("cadence_id") is None else str(stored["cadence_id"]),
        "time_zone": stored.get("time_zone") or "",
        "holiday_calendar": stored.get("holiday_calendar") or "",
        "window_mode": "own" if window else "inherit",
        "window_days": [str(day) for day in (window or {}).get("days", [0, 1, 2, 3, 4])],
        "window_start": (window or {}).get("start", "09:00"),
        "window_end": (window or {}).get("end", "17:00"),
        "approval": stored.get("approval") or "",
        "minimums": [(code, str(amount)) for code, amount in minimums.items()],
        "locale": stored.get("locale") or "",
        "business_name": stored.get("business_name") or "",
        "from_name": stored.get("from_name") or "",
        "reply_to": stored.get("reply_to") or "",
        "customer_page_ledger_notes": bool(stored.get("customer_page_ledger_notes")),
    }


def _typed(form: Mapping[str, Any]) -> dict[str, Any]:
    """What was posted, as the form shows it again."""
    minimums = []
    for index in range(MINIMUM_ROWS_MAX):
        code = str(form.get(f"min_currency_{index}", ""))[:40]
        amount = str(form.get(f"min_amount_{index}", ""))[:60]
        if code or amount:
            minimums.append((code, amount))
    return {
        "cadence_id": str(form.get("cadence_id", ""))[:20],
        "time_zone": str(form.get("time_zone", ""))[:100],
        "holiday_calendar": str(form.get("holiday_calendar", ""))[:40],
        "window_mode": "own" if form.get("window_mode") == "own" else "inherit",
        "window_days": [str(day)[:4] for day in request.form.getlist("window_days")][:14],
        "window_start": str(form.get("window_start", ""))[:10],
        "window_end": str(form.get("window_end", ""))[:10],
        "approval": str(form.get("approval", ""))[:20],
        "minimums": minimums,
        "locale": str(form.get("locale", ""))[:40],
        "business_name": str(form.get("business_name", ""))[:400],
        "from_name": str(form.get("from_name", ""))[:400],
        "reply_to": str(form.get("reply_to", ""))[:400],
        "customer_page_ledger_notes": form.get("customer_page_ledger_notes") == "on",
    }


def _changes(typed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings as the service takes them, and errors the form itself finds (a minimum without a currency)."""
    errors: dict[str, str] = {}
    raw_id = typed["cadence_id"]
    window: dict[str, Any] | None = None
    if typed["window_mode"] == "own":
        if not typed["window_days"]:
            errors["send_window"] = "Tick at least one day for the send window."
        window = {
            "days": [int(day) if day.isdigit() else day for day in typed["window_days"]],
            "start": typed["window_start"],
            "end": typed["window_end"],
        }
    minimums: dict[str, str] = {}
    for code, amount in typed["minimums"]:
        code, amount = code.strip(), amount.strip()
        if not amount:
            continue  # a currency without an amount: no minimum of its own
        if not code:
            errors["minimum_amounts"] = f"Say which currency {amount} is in (e.g. USD)."
            continue
        if code.upper() in {known.upper() for known in minimums}:
            errors["minimum_amounts"] = f"{code.upper()} is listed twice: keep one line per currency."
            continue
        minimums[code] = amount
    changes = {
        "cadence_id": None if raw_id == "" else (int(raw_id) if raw_id.isdigit() else raw_id),
        "time_zone": typed["time_zone"].strip(),
        "holiday_calendar": typed["holiday_calendar"].strip(),
        "send_window": window,
        "approval": typed["approval"],
        "minimum_amounts": minimums,
        "locale": typed["locale"].strip(),
        "business_name": typed["business_name"],
        "from_name": typed["from_name"],
        "reply_to": typed["reply_to"].strip(),
        "customer_page_ledger_notes": typed["customer_page_ledger_notes"],
    }
    return changes, errors


def _check(org_id: int, changes: Mapping[str, Any]) -> dict[str, str]:
    """Each changed field through the service's checks on its own: every wrong field named at once."""
    errors: dict[str, str] = {}
    with services().store.unit_of_work() as uow:
        for name, value in changes.items():
            try:
                service.check_changes(uow, org_id, {name: value})
            except InvalidInput as exc:
                errors[name] = plain_error(exc.user_message, exc.field or name)
    return errors


def _days(days: list[int]) -> str:
    """Weekdays in words: "Monday to Friday", "Monday, Wednesday and Friday"."""
    ordered = sorted(set(days))
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{WEEKDAYS[ordered[0]]} to {WEEKDAYS[ordered[-1]]}"
    return _listed([WEEKDAYS[day] for day in ordered if 0 <= day <= 6])


def effective_words(view: service.ClientSettingsView) -> dict[str, str]:
    """Each effective setting in words, with where it comes from when the client does not set it."""
    words: dict[str, str] = {}
    for name, found in view.effective.items():
        value = found.value
        if name == "cadence_id":
            text = value["name"] if isinstance(value, Mapping) else "none"
        elif name == "send_window":
            text = f"{_days(list(value['days']))}, {value['start']} to {value['end']}" if value else "any time"
        elif name == "approval":
            text = dict(APPROVALS).get(str(value), str(value) or "none")
        elif name == "minimum_amounts":
            text = ", ".join(f"{code} {amount}" for code, amount in (value or {}).items()) or "none"
        elif name == "customer_page_ledger_notes":
            text = "yes: also written to the ledger as notes" if value else "no: in Nudge's timeline only"
        elif name == "reply_to" and not value:
            text = "no Reply-To: answers go to the From address"
        else:
            text = str(value) if value else "none"
        words[name] = text if not found.inherited else f"{text} ({SOURCES.get(found.source, found.source)})"
    return words


def _render_client(
    org_id: int,
    connection_id: int,
    *,
    form: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    try:
        with services().store.unit_of_work() as uow:
            view = service.client_settings(uow, org_id, connection_id, _defaults())
    except UnknownRecord:
        abort(404)
    return (
        render_template(
            "settings/client.html",
            view=view,
            effective=effective_words(view),
            form=form if form is not None else _form_of(view.stored),
            errors=errors or {},
            cadences=_cadences(org_id),
            can_edit=g.role in WRITERS,
            sources=SOURCES,
            weekdays=list(enumerate(WEEKDAYS)),
            approvals=APPROVALS,
            time_zones=time_zones(),
            countries=countries(),
            locales=LOCALES,
            from_address=services().settings.mail.from_address,
            minimum_rows=MINIMUM_ROWS_MAX,
        ),
        status,
    )


@bp.get("/orgs/<int:org_id>/clients/<int:connection_id>/settings")
def client(org_id: int, connection_id: int) -> ResponseReturnValue:
    """One client's settings: each field, and where an empty one takes its value from."""
    return _render_client(org_id, connection_id)


@bp.post("/orgs/<int:org_id>/clients/<int:connection_id>/settings")
@require_role(*WRITERS)
def update_client(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Save the client's settings: all or nothing; every wrong field is named in place."""
    with services().store.unit_of_work() as uow:
        try:
            before = service.client_settings(uow, org_id, connection_id, _defaults())
        except UnknownRecord:
            abort(404)
    typed = _typed(request.form)
    changes, errors = _changes(typed)
    changed = {name: value for name, value in changes.items() if not _same(name, value, before.stored.get(name))}
    errors = {**_check(org_id, changed), **errors}
    if errors:
        return _render_client(org_id, connection_id, form=typed, errors=_top_level(errors), status=FORM_ERRORS)
    if not changed:
        flash("Nothing changed.", "info")
        return redirect(url_for("settings_page.client", org_id=org_id, connection_id=connection_id), 303)
    try:
        after = service.update_client_settings(
            services().store, org_id, connection_id, changed, _actor(), services().clock.now(), _defaults()
        )
    except InvalidInput as exc:  # changed meanwhile (a cadence deleted): the form says so in place
        errors = _top_level({exc.field or "": plain_error(exc.user_message, exc.field or "")})
        return _render_client(org_id, connection_id, form=typed, errors=errors, status=FORM_ERRORS)
    saved = [LABELS[name] for name in service.FIELDS if before.stored.get(name) != after.stored.get(name)]
    if saved:
        flash(f"Saved {after.client_name}: {_listed(saved)} changed.", "success")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("settings_page.client", org_id=org_id, connection_id=connection_id), 303)


def _same(name: str, value: Any, stored: Any) -> bool:
    """Whether a posted value is what is stored already (text compared as the service stores it: stripped)."""
    if isinstance(value, str) and isinstance(stored, str):
        return value.strip() == stored
    if name == "minimum_amounts":
        return {str(k).upper(): str(v) for k, v in (value or {}).items()} == dict(stored or {})
    if name == "send_window" and isinstance(value, Mapping) and isinstance(stored, Mapping):
        return dict(value) == dict(stored)
    return bool(value == stored or (value in (None, "", {}) and stored in (None, "", {})))


def _top_level(errors: Mapping[str, str]) -> dict[str, str]:
    """Errors by the form's field ("send_window.end" → "send_window"), the first one per field."""
    found: dict[str, str] = {}
    for name, message in errors.items():
        key = name.split(".", 1)[0].split("[", 1)[0]
        found.setdefault(key if key in LABELS else "form", message)
    return found


_PARTS = {"days": "Days", "start": "Start", "end": "End"}


def plain_error(message: str, field: str) -> str:
    """A service's message as the form shows it next to the field: the field's name in words, not its key
    ("time_zone must be…" → "Time zone must be…", "send_window.end must…" → "End must…")."""
    top, _, rest = field.partition(".")
    if top == "send_window" and rest:
        label = _PARTS.get(rest, "Send window")
    elif top == "minimum_amounts" and rest:
        label = rest
    else:
        label = LABELS.get(top, top)
        label = label[:1].upper() + label[1:]
    for prefix in (field, top):
        if prefix and message.startswith(prefix):
            message = label + message[len(prefix) :]
            break
    return sentence(message)


def _listed(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
