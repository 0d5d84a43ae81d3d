"""An organization's library as the planner and the mailer read it: current versions parsed into a `PolicySet`.

Bodies are stored in the YAML format of `config.example.yaml`, as JSON: a cadence's body is what sits under
`cadences.<name>`, a late fee's under `policies.late_fees.<name>` (discount: `discounts`, payment plan:
`payment_plans`), a template's {"subject.txt": source, "body.txt": source, "body.html": source (optional)}.
Clients and customers name cadences by item id (`ClientSettings.cadence_id`, `Customer.cadence_id`), so a
rename never loses them. An organization with no library rows yet reads the install's starter rules as given
(`seeded` False; connector.library.starter copies them into rows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from connector.domain.policy import PolicyError, PolicySet
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import InvalidInput
from connector.storage import UnitOfWork
from connector.storage.tables import LibraryItem, LibraryVersion

CADENCE = "cadence"
LATE_FEE = "late_fee"
DISCOUNT = "discount"
PAYMENT_PLAN = "payment_plan"
TEMPLATE = "template"
KINDS = (CADENCE, LATE_FEE, DISCOUNT, PAYMENT_PLAN, TEMPLATE)
# The key of each policy kind in the YAML's `policies:` block.
POLICY_SECTIONS = {LATE_FEE: "late_fees", DISCOUNT: "discounts", PAYMENT_PLAN: "payment_plans"}
TEMPLATE_PARTS = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """The current version of one library item."""

    item_id: int
    kind: str
    name: str
    version_id: int
    version_number: int
    body: Mapping[str, Any]


@dataclass(frozen=True)
class OrgLibrary:
    """One organization's cadences, policies and templates (current versions), parsed and checked together."""

    organization_id: int
    rules: PolicySet
    entries: tuple[LibraryEntry, ...] = ()
    seeded: bool = True  # False: no rows yet; `rules` are the install's starter rules
    _by_id: Mapping[int, LibraryEntry] = field(default_factory=dict, repr=False)

    def entry(self, item_id: int | None) -> LibraryEntry | None:
        """The entry of item `item_id` (None when unknown or deleted)."""
        return self._by_id.get(item_id) if item_id is not None else None

    def cadence_name(self, item_id: int | None) -> str | None:
        """The current name of cadence `item_id` (None when it is not a live cadence of this library)."""
        found = self.entry(item_id)
        return found.name if found is not None and found.kind == CADENCE else None

    def item_id(self, kind: str, name: str) -> int | None:
        """The id of the live item of `kind` named `name`."""
        return next((e.item_id for e in self.entries if e.kind == kind and e.name == name), None)

    def version_of(self, kind: str, name: str) -> int | None:
        """The current version id of the live item of `kind` named `name` (None for unseeded rules)."""
        return next((e.version_id for e in self.entries if e.kind == kind and e.name == name), None)

    def template_sources(self) -> dict[str, str]:
        """Every template part as `render_reminder` takes overrides: {"<name>/<part>": source}."""
        return {
            f"{entry.name}/{part}": str(source)
            for entry in self.entries
            if entry.kind == TEMPLATE
            for part, source in entry.body.items()
            if part in TEMPLATE_PARTS and isinstance(source, str)
        }

    def policy_document(self) -> dict[str, Any]:
        """The library as the config file's `policies:` block plus `cadences:` (for policy_from_dict, export)."""
        return policy_document(self.entries)


def policy_document(entries: tuple[LibraryEntry, ...] | list[LibraryEntry]) -> dict[str, Any]:
    """`entries` as {"templates": [...], "late_fees": {...}, "discounts": {...}, "payment_plans": {...},
    "cadences": {...}} (templates listed only when the library has any)."""
    document: dict[str, Any] = {section: {} for section in POLICY_SECTIONS.values()}
    document["cadences"] = {}
    templates = sorted(entry.name for entry in entries if entry.kind == TEMPLATE)
    for entry in sorted(entries, key=lambda e: (e.kind, e.name)):
        if entry.kind == CADENCE:
            document["cadences"][entry.name] = dict(entry.body)
        elif entry.kind in POLICY_SECTIONS:
            document[POLICY_SECTIONS[entry.kind]][entry.name] = dict(entry.body)
    if templates:
        document["templates"] = templates
    return document


def parse_rules(document: Mapping[str, Any]) -> PolicySet:
    """The PolicySet of a policy document; InvalidInput naming the cadence/policy, step and field."""
    try:
        return _parse_cached(_freeze(document))
    except PolicyError as exc:
        raise InvalidInput(str(exc), field=_field_of(str(exc))) from None


def library_for(uow: UnitOfWork, organization_id: int, starter: PolicySet) -> OrgLibrary:
    """The organization's current library; `starter` (the install's rules) when it has no rows yet."""
    rows = uow.session.execute(
        select(LibraryItem.id, LibraryItem.kind, LibraryItem.name, LibraryVersion.id, LibraryVersion.number)
        .join(LibraryVersion, LibraryVersion.id == LibraryItem.current_version_id)
        .where(LibraryItem.organization_id == organization_id, LibraryItem.deleted_at.is_(None))
    ).all()
    if not rows:
        has_any = uow.session.scalar(
            select(LibraryItem.id).where(LibraryItem.organization_id == organization_id).limit(1)
        )
        if has_any is None:
            return OrgLibrary(organization_id, starter, (), seeded=False)
    bodies: dict[int, dict[str, Any]] = dict(
        uow.session.execute(
            select(LibraryVersion.id, LibraryVersion.body).where(LibraryVersion.id.in_([row[3] for row in rows]))
        ).all()
    )
    entries = tuple(
        LibraryEntry(item_id, kind, name, version_id, number, bodies.get(version_id) or {})
        for item_id, kind, name, version_id, number in rows
    )
    return assemble(organization_id, entries)


def assemble(organization_id: int, entries: tuple[LibraryEntry, ...]) -> OrgLibrary:
    """An OrgLibrary of `entries`, parsed and cross-checked (InvalidInput when they do not fit together)."""
    rules = parse_rules(policy_document(entries))
    return OrgLibrary(organization_id, rules, entries, seeded=True, _by_id={e.item_id: e for e in entries})


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("__list__", tuple(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__list__":
        return [_thaw(v) for v in value[1]]
    if isinstance(value, tuple):
        return {k: _thaw(v) for k, v in value}
    return value


@lru_cache(maxsize=256)
def _parse_cached(frozen: Any) -> PolicySet:
    """Parsing is pure: an organization's unchanged library is parsed once per process, not once per plan."""
    return policy_from_dict(_thaw(frozen))


_FIELD = re.compile(r"field '([^']+)'")


def _field_of(message: str) -> str:
    """The field a PolicyError names ("cadence 'x', step 2, field 'offset': …" → "offset"); "" when none."""
    found = _FIELD.search(message)
    return found.group(1) if found else ""
