"""Config as code: an organization's library as a YAML file, and a YAML file applied to the library.

The file is today's config format: `cadences:` and `policies:` blocks exactly as in config.example.yaml
(`policies.templates` lists the template names), plus a `templates:` block with each template's sources
({name: {subject.txt, body.txt, body.html}}). Importing checks the file with the same file:line messages as
`nudge check-config` (connector.config.check_library_text), then the library as it would be after the import
(the file's items over the organization's others), then each template in the sandbox; nothing is written
unless all of it passes. Applying: an item of the file that is new is created, one whose body differs gets a
new version, an equal one is left alone (so export → import changes nothing); every change is audited as
"import". Items the file lacks are kept, unless `delete_missing`: then they are deleted, except those in use
(a cadence clients, customers or the organization default follow; a policy or template a remaining cadence
or payment plan names), which are kept and reported. A name is the item's key, so a rename in a file is a
delete plus a create: rename through the API (or `rename_item`) to keep an item's id and its clients.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from connector.config import check_library_text
from connector.errors import ChangeRefused, ConfigError, ConfigIssue, InvalidInput
from connector.library import items
from connector.library.audit import plain
from connector.library.resolve import CADENCE, POLICY_SECTIONS, TEMPLATE, LibraryEntry, assemble
from connector.library.templates import check_template_body
from connector.storage import UnitOfWork
from connector.storage.tables import Organization

# Apply order: what others name first (templates, then policies), cadences last; deletions the other way.
ORDER = (TEMPLATE, *POLICY_SECTIONS, CADENCE)
_CADENCE = re.compile(r"^cadence '([^']+)'")


@dataclass
class ImportReport:
    """What an import did (or, dry run, would do): (kind, name) per change; in-use items it kept."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    kept_in_use: list[tuple[str, str, str]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        """Whether the import changed anything."""
        return bool(self.created or self.updated or self.deleted)

    def lines(self) -> list[str]:
        """The report as lines for people."""
        out = [f"created {kind.replace('_', ' ')} {name!r}" for kind, name in self.created]
        out += [f"updated {kind.replace('_', ' ')} {name!r} (new version)" for kind, name in self.updated]
        out += [f"deleted {kind.replace('_', ' ')} {name!r}" for kind, name in self.deleted]
        out += [f"kept {kind.replace('_', ' ')} {name!r}: in use ({why})" for kind, name, why in self.kept_in_use]
        out.append(f"{self.unchanged} unchanged")
        return out


# -- export ------------------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (a template) as a literal block, the way people write it by hand.
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def export_library(uow: UnitOfWork, organization_id: int) -> str:
    """The organization's library as YAML: `cadences:`, `policies:` (with `templates:` names) and `templates:`."""
    entries = items.live_entries(uow, organization_id)
    organization = uow.session.get(Organization, organization_id)
    name = organization.name if organization is not None else ""
    by_kind: dict[str, list[LibraryEntry]] = {kind: [] for kind in ORDER}
    for entry in sorted(entries, key=lambda e: e.name):
        by_kind[entry.kind].append(entry)
    policies: dict[str, Any] = {}
    if by_kind[TEMPLATE]:
        policies["templates"] = [entry.name for entry in by_kind[TEMPLATE]]
    for kind, section in POLICY_SECTIONS.items():
        policies[section] = {entry.name: dict(entry.body) for entry in by_kind[kind]}
    document: dict[str, Any] = {
        "cadences": {entry.name: dict(entry.body) for entry in by_kind[CADENCE]},
        "policies": policies,
        "templates": {entry.name: dict(entry.body) for entry in by_kind[TEMPLATE]},
    }
    header = (
        f"# The library of organization {organization_id} ({name}), exported by `nudge library export`.\n"
        "# Apply changes with `nudge library import --org ID FILE` (check first with --dry-run).\n"
    )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return header + body


# -- import ------------------------------------------------------------------------------------------
def import_library(
    uow: UnitOfWork,
    organization_id: int,
    text: str,
    *,
    source: str,
    actor: str,
    now: datetime,
    delete_missing: bool = False,
) -> ImportReport:
    """Check library file `text` and apply it (uncommitted); ConfigError with file:line when it is refused."""
    document = check_library_text(text, source)
    wanted = _wanted(document.cadences, document.policies, document.templates)
    current = {(e.kind, e.name): e for e in items.live_entries(uow, organization_id)}
    report = ImportReport()
    _check_templates(document.templates or {}, document.lines, source)
    final: dict[tuple[str, str], Mapping[str, Any]] = {key: entry.body for key, entry in current.items()}
    final.update(wanted)
    missing = [key for key in current if key not in wanted and _in_file_sections(key[0], document.templates)]
    if delete_missing:
        for key in missing:
            final.pop(key)
        # Users before what they use (cadences, plans, policies, templates): a kept cadence keeps its policies.
        for key in sorted(missing, key=lambda k: list(reversed(ORDER)).index(k[0])):
            why = _in_use(uow, organization_id, current[key], final)
            if why:
                report.kept_in_use.append((key[0], key[1], why))
                final[key] = current[key].body
    _check_final(organization_id, final, source, document.lines)
    try:
        _apply(uow, organization_id, wanted, current, report, actor=actor, now=now)
        if delete_missing:
            kept = {(kind, name) for kind, name, _ in report.kept_in_use}
            for kind in reversed(ORDER):
                for key in missing:
                    if key[0] == kind and key not in kept:
                        items.delete_item(
                            uow, organization_id, current[key].item_id, actor=actor, now=now, change="import"
                        )
                        report.deleted.append(key)
    except ChangeRefused as exc:
        uow.rollback()
        raise ConfigError([ConfigIssue(source, None, exc.field, exc.user_message)]) from None
    return report


def _wanted(
    cadences: Mapping[str, Any], policies: Mapping[str, Any], templates: Mapping[str, Mapping[str, str]] | None
) -> dict[tuple[str, str], Mapping[str, Any]]:
    wanted: dict[tuple[str, str], Mapping[str, Any]] = {}
    for name, body in (templates or {}).items():
        wanted[(TEMPLATE, str(name).strip())] = dict(body)
    for kind, section in POLICY_SECTIONS.items():
        for name, body in (policies.get(section) or {}).items():
            wanted[(kind, str(name).strip())] = body if isinstance(body, Mapping) else {}
    for name, body in cadences.items():
        wanted[(CADENCE, str(name).strip())] = body if isinstance(body, Mapping) else {}
    return wanted


def _in_file_sections(kind: str, templates: Mapping[str, Any] | None) -> bool:
    """Templates are only deleted for missing when the file has a `templates:` block at all."""
    return kind != TEMPLATE or templates is not None


def _check_templates(templates: Mapping[str, Mapping[str, str]], lines: Mapping[str, int], source: str) -> None:
    issues: list[ConfigIssue] = []
    for name, parts in templates.items():
        try:
            check_template_body(name, parts)
        except InvalidInput as exc:
            path = f"templates.{name}.{exc.field}"
            line = lines.get(path) or lines.get(f"templates.{name}.body.txt")
            issues.append(ConfigIssue(source, line, path, exc.user_message))
    if issues:
        raise ConfigError(issues)


def _check_final(
    organization_id: int, final: Mapping[tuple[str, str], Mapping[str, Any]], source: str, lines: Mapping[str, int]
) -> None:
    """The library as the import leaves it must parse and fit together (a cadence the file does not list
    may name a policy the file changes)."""
    entries = tuple(
        LibraryEntry(n, kind, name, 0, 0, dict(_plain(body))) for n, ((kind, name), body) in enumerate(final.items())
    )
    try:
        assemble(organization_id, entries)
    except InvalidInput as exc:
        named = _CADENCE.match(exc.user_message)
        path = f"cadences.{named.group(1)}" if named else ""
        raise ConfigError([ConfigIssue(source, lines.get(path), path, exc.user_message)]) from None


def _in_use(
    uow: UnitOfWork, organization_id: int, entry: LibraryEntry, final: Mapping[tuple[str, str], Mapping[str, Any]]
) -> str:
    """Why `entry` cannot be deleted ("" when it can): its users, or the remaining items that name it."""
    if entry.kind == CADENCE:
        return items.usage(uow, organization_id, entry.item_id).describe()
    naming = [
        f"{kind.replace('_', ' ')} {name!r}"
        for (kind, name), body in final.items()
        if items.refers(LibraryEntry(0, kind, name, 0, 0, body), entry.kind, entry.name)
    ]
    return ", ".join(naming)


def _apply(
    uow: UnitOfWork,
    organization_id: int,
    wanted: Mapping[tuple[str, str], Mapping[str, Any]],
    current: Mapping[tuple[str, str], LibraryEntry],
    report: ImportReport,
    *,
    actor: str,
    now: datetime,
) -> None:
    for kind in ORDER:
        for (entry_kind, name), body in wanted.items():
            if entry_kind != kind:
                continue
            existing = current.get((kind, name))
            if existing is None:
                items.create_item(uow, organization_id, kind, name, body, actor=actor, now=now, change="import")
                report.created.append((kind, name))
            elif dict(_plain(body)) != dict(existing.body):
                items.update_item(
                    uow,
                    organization_id,
                    existing.item_id,
                    body,
                    base_version=existing.version_number,
                    actor=actor,
                    now=now,
                    change="import",
                )
                report.updated.append((kind, name))
            else:
                report.unchanged += 1


def _plain(body: Mapping[str, Any]) -> Mapping[str, Any]:
    result = plain(body)
    return result if isinstance(result, Mapping) else {}
