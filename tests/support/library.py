"""Library rows written directly (what connector.library's services would store): items and current versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.library.resolve import CADENCE, POLICY_SECTIONS, TEMPLATE, LibraryEntry
from connector.storage import Store
from connector.storage.tables import LibraryItem, LibraryVersion


def add_item(store: Store, organization_id: int, kind: str, name: str, body: Mapping[str, Any]) -> LibraryEntry:
    """One library item with its first version (current); the entry as resolve reads it."""
    with store.unit_of_work() as uow:
        item = LibraryItem(organization_id=organization_id, kind=kind, name=name)
        uow.session.add(item)
        uow.session.flush()
        version = LibraryVersion(item_id=item.id, number=1, name=name, body=dict(body), created_by="test")
        uow.session.add(version)
        uow.session.flush()
        item.current_version_id = version.id
        uow.commit()
        return LibraryEntry(item.id, kind, name, version.id, 1, dict(body))


def new_version(store: Store, item_id: int, body: Mapping[str, Any], name: str | None = None) -> int:
    """A new current version of item `item_id` (renamed when `name` is given); its id."""
    with store.unit_of_work() as uow:
        item = uow.session.get(LibraryItem, item_id)
        assert item is not None
        number = 1 + max(
            (v.number for v in uow.session.query(LibraryVersion).filter(LibraryVersion.item_id == item_id)),
            default=0,
        )
        version = LibraryVersion(item_id=item_id, number=number, name=name or item.name, body=dict(body))
        uow.session.add(version)
        uow.session.flush()
        item.current_version_id = version.id
        item.name = version.name
        uow.commit()
        return version.id


def seed_library(
    store: Store,
    organization_id: int,
    document: Mapping[str, Any],
    templates: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, LibraryEntry]:
    """Every cadence and policy of a policy document (the config's `cadences:` and `policies:` shape) and the
    `templates` ({name: {part: source}}) as library rows; entries by "kind:name"."""
    entries: dict[str, LibraryEntry] = {}
    for name, body in (document.get("cadences") or {}).items():
        entries[f"{CADENCE}:{name}"] = add_item(store, organization_id, CADENCE, name, body)
    for kind, section in POLICY_SECTIONS.items():
        for name, body in (document.get(section) or {}).items():
            entries[f"{kind}:{name}"] = add_item(store, organization_id, kind, name, body)
    for name, parts in (templates or {}).items():
        entries[f"{TEMPLATE}:{name}"] = add_item(store, organization_id, TEMPLATE, name, parts)
    return entries
