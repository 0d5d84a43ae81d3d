"""The library API: an organization's cadences, late fees, discounts, payment plans and templates, their versions,
and the organization's audit log (docs/library.md).

    /api/v1/orgs/{org_id}/library/{kind}                        GET list, POST create
    /api/v1/orgs/{org_id}/library/{kind}/{item_id}              GET (with its versions), PUT update, DELETE
    /api/v1/orgs/{org_id}/library/{kind}/{item_id}/rename       POST
    /api/v1/orgs/{org_id}/library/{kind}/{item_id}/restore      POST
    /api/v1/orgs/{org_id}/library/{kind}/{item_id}/versions     GET (bodies included)
    /api/v1/orgs/{org_id}/library/{kind}/{item_id}/usage        GET (who uses it)
    /api/v1/orgs/{org_id}/audit                                 GET (filters: connection_id, entity, entity_id)

`{kind}` is cadences, late_fees, discounts, payment_plans or templates. Every member reads; owners and
accountants change (a member limited to some clients does not: the library is the whole organization's).
Views are thin: connector.library.items does the work and raises the errors web.api.problems turns into
problem+json (InvalidInput 422 naming the field, UnknownRecord 404, InUse 409 for in-use and stale edits).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import abort
from flask_smorest import Blueprint

from connector.library import audit, items
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, PAYMENT_PLAN, TEMPLATE
from connector.library.starter import ensure_library
from connector.storage import UnitOfWork
from web.api import context
from web.api.pagination import PageArgsSchema, page_of, page_request, page_schema
from web.extensions import services

blp = Blueprint("library", __name__, description="The organization's library (cadences, policies, templates) and audit")

# URL segment → library kind.
KINDS = {
    "cadences": CADENCE,
    "late_fees": LATE_FEE,
    "discounts": DISCOUNT,
    "payment_plans": PAYMENT_PLAN,
    "templates": TEMPLATE,
}
MAX_BODY_KEYS = 200


# -- schemas ---------------------------------------------------------------------------------------------
class LibraryItemSchema(ma.Schema):
    """A library item at its current version."""

    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(list(KINDS.values())))
    name = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True, metadata={"description": "the current version's number"})
    body = ma.fields.Dict(
        keys=ma.fields.String(),
        required=True,
        metadata={
            "description": "the YAML block of config.example.yaml as JSON (a template: subject.txt, body.txt, "
            "body.html sources)"
        },
    )
    updated_at = ma.fields.AwareDateTime(required=True)


class LibraryVersionSummarySchema(ma.Schema):
    """One saved version of an item, without its body."""

    id = ma.fields.Integer(required=True)
    number = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    created_by = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class LibraryVersionSchema(LibraryVersionSummarySchema):
    """One saved version of an item, with its body."""

    body = ma.fields.Dict(keys=ma.fields.String(), required=True)


class LibraryItemDetailSchema(LibraryItemSchema):
    """A library item with the list of its kept versions (newest first)."""

    versions = ma.fields.List(ma.fields.Nested(LibraryVersionSummarySchema), required=True)


class LibraryUserSchema(ma.Schema):
    """An id with a name."""

    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)


class LibraryReferrerSchema(ma.Schema):
    """A library item that names another."""

    kind = ma.fields.String(required=True)
    name = ma.fields.String(required=True)


class LibraryPlanSchema(ma.Schema):
    """An agreed payment plan: the client and the invoice."""

    client = ma.fields.String(required=True)
    invoice = ma.fields.String(required=True, metadata={"description": "the ledger's invoice id"})


class LibraryUsageSchema(ma.Schema):
    """Who uses an item: what a delete would break."""

    clients = ma.fields.List(
        ma.fields.Nested(LibraryUserSchema), required=True, metadata={"description": "connections"}
    )
    customers = ma.fields.List(ma.fields.Nested(LibraryUserSchema), required=True)
    default = ma.fields.Boolean(required=True, metadata={"description": "the organization's default cadence"})
    items = ma.fields.List(ma.fields.Nested(LibraryReferrerSchema), required=True)
    plans = ma.fields.List(
        ma.fields.Nested(LibraryPlanSchema),
        required=True,
        metadata={"description": "active payment plans agreed under a payment-plan policy"},
    )
    in_use = ma.fields.Boolean(required=True)


def _body_size(value: dict[str, Any]) -> None:
    if len(value) > MAX_BODY_KEYS:
        raise ma.ValidationError(f"at most {MAX_BODY_KEYS} keys")


class LibraryCreateSchema(ma.Schema):
    """A new item: its name and its body."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=items.MAX_NAME))
    body = ma.fields.Dict(keys=ma.fields.String(), required=True, validate=_body_size)


class LibraryUpdateSchema(ma.Schema):
    """A new body for an item, and the version it was edited from (a stale one is a 409)."""

    body = ma.fields.Dict(keys=ma.fields.String(), required=True, validate=_body_size)
    base_version = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=2**31 - 1))


class LibraryRenameSchema(ma.Schema):
    """A new name (the id stays); `base_version` optional."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=items.MAX_NAME))
    base_version = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=2**31 - 1))


class LibraryRestoreSchema(ma.Schema):
    """The old version whose body becomes current again; `base_version` optional."""

    version = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=2**31 - 1))
    base_version = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=2**31 - 1))


class AuditArgsSchema(PageArgsSchema):
    """Filters of the audit log."""

    connection_id = ma.fields.Integer(
        load_default=None, validate=ma.validate.Range(min=1, max=2**31 - 1), metadata={"description": "one client"}
    )
    entity = ma.fields.String(
        load_default=None,
        validate=[ma.validate.Length(min=1, max=40), ma.validate.Regexp(r"^[A-Za-z0-9_.-]+$")],
        metadata={"description": "cadence, late_fee, discount, payment_plan, template, client_settings, …"},
    )
    entity_id = ma.fields.String(
        load_default=None,
        validate=[ma.validate.Length(min=1, max=200), ma.validate.Regexp(r"^[^\x00-\x1f\x7f]+$")],
    )


class AuditEntrySchema(ma.Schema):
    """Who changed what, when, and the state before and after (null where there was none)."""

    id = ma.fields.Integer(required=True)
    connection_id = ma.fields.Integer(required=True, allow_none=True)
    actor = ma.fields.String(required=True)
    at = ma.fields.AwareDateTime(required=True)
    entity = ma.fields.String(required=True)
    entity_id = ma.fields.String(required=True)
    change = ma.fields.String(required=True)
    before = ma.fields.Dict(keys=ma.fields.String(), required=True, allow_none=True)
    after = ma.fields.Dict(keys=ma.fields.String(), required=True, allow_none=True)


ItemPage = page_schema(LibraryItemSchema, "LibraryItem")
AuditPage = page_schema(AuditEntrySchema, "AuditEntry")


# -- helpers ---------------------------------------------------------------------------------------------
def _now() -> datetime:
    return services().clock.now()


def _writer(org_id: int) -> None:
    """Owners and accountants change the library; a member limited to some clients does not."""
    context.ensure_role(*context.WRITERS)
    if context.visible_connection_ids(org_id) is not None:
        abort(403, description="The library is the whole organization's: a member limited to some clients reads it.")


def _seeded(uow: UnitOfWork, org_id: int) -> None:
    """An organization with no library yet gets the install's starter library first (committed)."""
    if ensure_library(uow, org_id, services().settings, _now()):
        uow.commit()


def _item(view: items.ItemView) -> dict[str, Any]:
    return {
        "id": view.id,
        "kind": view.kind,
        "name": view.name,
        "version": view.version,
        "body": dict(view.body),
        "updated_at": view.updated_at,
    }


def _version(version: items.VersionView, *, body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": version.id,
        "number": version.number,
        "name": version.name,
        "created_by": version.created_by,
        "created_at": version.created_at,
    }
    if body:
        out["body"] = dict(version.body)
    return out


def _detail(uow: UnitOfWork, org_id: int, item_id: int, kind: str) -> dict[str, Any]:
    found = _item(items.get_item(uow, org_id, item_id, kind))
    found["versions"] = [_version(v, body=False) for v in items.versions(uow, org_id, item_id, kind)]
    return found


# -- routes, one set per kind ------------------------------------------------------------------------------
def _named(segment: str, name: str, doc: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name and document a view before flask-smorest reads them (the route decorator runs last)."""

    def named(view: Callable[..., Any]) -> Callable[..., Any]:
        view.__name__ = f"{segment}_{name}"
        view.__qualname__ = view.__name__
        view.__doc__ = doc
        return view

    return named


def _paths(segment: str, kind: str) -> tuple[str, str, str]:
    collection = f"/orgs/<int:org_id>/library/{segment}"
    return kind.replace("_", " "), collection, f"{collection}/<int:item_id>"


def _read_routes(segment: str, kind: str) -> None:
    """The reading routes of one kind under /orgs/<org_id>/library/<segment>."""
    label, collection, member = _paths(segment, kind)

    @blp.get(collection, endpoint=f"{segment}_list")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ItemPage)
    @_named(segment, "list", f"The organization's {label}s at their current versions, by id.")
    def list_view(args: dict[str, Any], org_id: int) -> dict[str, Any]:
        with services().store.unit_of_work() as uow:  # a GET never writes: organizations are seeded when created
            page = page_request(args)
            after = int(page.position) if isinstance(page.position, int) else 0
            rows = sorted((i for i in items.list_items(uow, org_id, kind) if i.id > after), key=lambda i: i.id)
            return page_of(rows[: page.limit + 1], page, position=lambda i: i.id, item=_item)

    @blp.get(member, endpoint=f"{segment}_get")
    @blp.response(200, LibraryItemDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @_named(segment, "get", f"One {label} at its current version, with its kept versions.")
    def get_view(org_id: int, item_id: int) -> dict[str, Any]:
        with services().store.unit_of_work() as uow:
            return _detail(uow, org_id, item_id, kind)

    @blp.get(f"{member}/versions", endpoint=f"{segment}_versions")
    @blp.response(200, LibraryVersionSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @_named(segment, "versions", f"Every kept version of a {label}, newest first, with bodies.")
    def versions_view(org_id: int, item_id: int) -> list[dict[str, Any]]:
        with services().store.unit_of_work() as uow:
            return [_version(v, body=True) for v in items.versions(uow, org_id, item_id, kind)]

    @blp.get(f"{member}/usage", endpoint=f"{segment}_usage")
    @blp.response(200, LibraryUsageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @_named(segment, "usage", f"Who uses a {label}: clients, customers, the default cadence, items naming it.")
    def usage_view(org_id: int, item_id: int) -> dict[str, Any]:
        with services().store.unit_of_work() as uow:
            found = items.get_item(uow, org_id, item_id, kind)
            users = items.usage(uow, org_id, found.id)
        visible = context.visible_connection_ids(org_id)
        return {
            "clients": [{"id": cid, "name": name} for cid, name in users.clients if visible is None or cid in visible],
            "customers": [{"id": cid, "name": name} for cid, name in users.customers] if visible is None else [],
            "default": users.default,
            "items": [{"kind": k, "name": n} for k, n in users.items],
            "plans": [{"client": c, "invoice": i} for c, i in users.plans] if visible is None else [],
            "in_use": bool(users),
        }


def _write_routes(segment: str, kind: str) -> None:
    """The changing routes of one kind (owners and accountants)."""
    label, collection, member = _paths(segment, kind)

    @blp.post(collection, endpoint=f"{segment}_create")
    @blp.arguments(LibraryCreateSchema)
    @blp.response(201, LibraryItemSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(409, response="CONFLICT")
    @_named(
        segment, "create", f"Create a {label} (version 1); the whole library is checked with it (422 names the field)."
    )
    def create_view(data: dict[str, Any], org_id: int) -> dict[str, Any]:
        _writer(org_id)
        with services().store.unit_of_work() as uow:
            _seeded(uow, org_id)
            created = items.create_item(
                uow, org_id, kind, data["name"], data["body"], actor=context.actor(), now=_now()
            )
            uow.commit()
            return _item(created)

    @blp.put(member, endpoint=f"{segment}_update")
    @blp.arguments(LibraryUpdateSchema)
    @blp.response(200, LibraryItemSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @_named(
        segment,
        "update",
        f"Save a new version of a {label}: `base_version` is the version edited (409 when someone else saved since).",
    )
    def update_view(data: dict[str, Any], org_id: int, item_id: int) -> dict[str, Any]:
        _writer(org_id)
        with services().store.unit_of_work() as uow:
            updated = items.update_item(
                uow,
                org_id,
                item_id,
                data["body"],
                base_version=data["base_version"],
                kind=kind,
                actor=context.actor(),
                now=_now(),
            )
            uow.commit()
            return _item(updated)

    @blp.delete(member, endpoint=f"{segment}_delete")
    @blp.response(204)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @_named(segment, "delete", f"Delete a {label} (its versions stay); 409 naming its users while it is in use.")
    def delete_view(org_id: int, item_id: int) -> None:
        _writer(org_id)
        with services().store.unit_of_work() as uow:
            items.delete_item(uow, org_id, item_id, kind=kind, actor=context.actor(), now=_now())
            uow.commit()

    @blp.post(f"{member}/rename", endpoint=f"{segment}_rename")
    @blp.arguments(LibraryRenameSchema)
    @blp.response(200, LibraryItemSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @_named(
        segment,
        "rename",
        f"Rename a {label}: the id stays; cadences and payment plans naming it are rewritten as new versions.",
    )
    def rename_view(data: dict[str, Any], org_id: int, item_id: int) -> dict[str, Any]:
        _writer(org_id)
        with services().store.unit_of_work() as uow:
            renamed = items.rename_item(
                uow,
                org_id,
                item_id,
                data["name"],
                base_version=data["base_version"],
                kind=kind,
                actor=context.actor(),
                now=_now(),
            )
            uow.commit()
            return _item(renamed)

    @blp.post(f"{member}/restore", endpoint=f"{segment}_restore")
    @blp.arguments(LibraryRestoreSchema)
    @blp.response(200, LibraryItemSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @_named(segment, "restore", f"Make an old version's body of a {label} current again, as a new version.")
    def restore_view(data: dict[str, Any], org_id: int, item_id: int) -> dict[str, Any]:
        _writer(org_id)
        with services().store.unit_of_work() as uow:
            restored = items.restore_version(
                uow,
                org_id,
                item_id,
                data["version"],
                base_version=data["base_version"],
                kind=kind,
                actor=context.actor(),
                now=_now(),
            )
            uow.commit()
            return _item(restored)


for _segment, _kind in KINDS.items():
    _read_routes(_segment, _kind)
    _write_routes(_segment, _kind)


# -- the audit log ---------------------------------------------------------------------------------------
@blp.get("/orgs/<int:org_id>/audit")
@blp.arguments(AuditArgsSchema, location="query")
@blp.response(200, AuditPage)
@blp.alt_response(404, response="NOT_FOUND")
def audit_log(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """The organization's audit log, newest first: who changed what, when, before and after.

    A member limited to some clients sees the entries of those clients only.
    """
    visible = context.visible_connection_ids(org_id)
    connection_id = args.get("connection_id")
    if connection_id is not None:
        context.connection_or_404(org_id, connection_id)
    page = page_request(args)
    before_id = int(page.position) if isinstance(page.position, int) else None
    with services().store.unit_of_work() as uow:
        rows = audit.entries(
            uow,
            org_id,
            connection_id=connection_id,
            connection_ids=visible,
            entity=args.get("entity"),
            entity_id=args.get("entity_id"),
            before_id=before_id,
            limit=page.limit + 1,
        )
    return page_of(
        rows,
        page,
        position=lambda row: row.id,
        item=lambda row: {
            "id": row.id,
            "connection_id": row.connection_id,
            "actor": row.actor,
            "at": row.at,
            "entity": row.entity,
            "entity_id": row.entity_id,
            "change": row.change,
            "before": dict(row.before) if row.before is not None else None,
            "after": dict(row.after) if row.after is not None else None,
        },
    )
