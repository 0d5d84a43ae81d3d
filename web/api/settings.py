"""Client settings and organization defaults (connector.library.settings): read by every member, changed by
owners and accountants. PATCH sends only the fields to change; null or "" clears one (it inherits again).

    GET/PATCH /api/v1/orgs/{org_id}/clients/{connection_id}/settings
    GET/PATCH /api/v1/orgs/{org_id}/settings
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.library import settings as service
from web.api import context
from web.extensions import services

blp = Blueprint("settings", __name__, description="Client settings and organization defaults")


class SendWindowSchema(ma.Schema):
    """When reminders may go out, in the customer's local time."""

    days = ma.fields.List(
        ma.fields.Integer(strict=True),
        required=True,
        metadata={"description": "weekdays, 0 = Monday … 6 = Sunday"},
    )
    start = ma.fields.String(required=True, metadata={"description": "HH:MM"})
    end = ma.fields.String(required=True, metadata={"description": "HH:MM, after start"})


def _setting_fields(*, for_input: bool) -> dict[str, ma.fields.Field]:
    """The client settings' fields (stored values; on input every one is optional and nullable)."""
    options: dict[str, Any] = {"allow_none": True} if for_input else {"required": True, "allow_none": True}
    return {
        "cadence_id": ma.fields.Integer(
            strict=True, metadata={"description": "a cadence of the library; null: inherit"}, **options
        ),
        "time_zone": ma.fields.String(metadata={"description": "IANA zone; empty: the ledger's"}, **options),
        "holiday_calendar": ma.fields.String(
            metadata={"description": 'country ("GB") or country-region ("US-CA"); empty: the ledger\'s'}, **options
        ),
        "send_window": ma.fields.Nested(SendWindowSchema, metadata={"description": "null: the cadence's"}, **options),
        "approval": ma.fields.String(metadata={"description": "none | ledger | all; empty: the cadence's"}, **options),
        "minimum_amounts": ma.fields.Dict(
            keys=ma.fields.String(),
            values=ma.fields.String(),
            metadata={"description": 'ISO currency → amount as text, e.g. {"USD": "25.00"}'},
            **options,
        ),
        "locale": ma.fields.String(metadata={"description": "e.g. en_GB; empty: the install's"}, **options),
        "business_name": ma.fields.String(metadata={"description": "empty: the ledger's name"}, **options),
        "from_name": ma.fields.String(metadata={"description": "empty: the business name"}, **options),
        "reply_to": ma.fields.String(metadata={"description": "an address; empty: the install's"}, **options),
        "customer_page_ledger_notes": ma.fields.Boolean(
            metadata={"description": "what customers say on their page is also a ledger note on the invoice"},
            **options,
        ),
    }


ClientSettingsPatchSchema = ma.Schema.from_dict(_setting_fields(for_input=True), name="ClientSettingsPatch")
StoredSettingsSchema = ma.Schema.from_dict(_setting_fields(for_input=False), name="ClientSettingsStored")


class EffectiveSchema(ma.Schema):
    """One effective setting and where it comes from."""

    value = ma.fields.Raw(required=True, allow_none=True)
    source = ma.fields.String(
        required=True,
        metadata={"description": "client | client_legacy | organization | ledger | cadence | install | business_name"},
    )
    inherited = ma.fields.Boolean(required=True)


class ClientSettingsSchema(ma.Schema):
    """A client's stored settings, the effective ones, and problems to fix."""

    connection_id = ma.fields.Integer(required=True)
    client_name = ma.fields.String(required=True)
    stored = ma.fields.Nested(StoredSettingsSchema, required=True)
    effective = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(EffectiveSchema), required=True)
    inherited = ma.fields.List(ma.fields.String(), required=True)
    problems = ma.fields.List(ma.fields.String(), required=True)
    updated_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class OrganizationSettingsPatchSchema(ma.Schema):
    """The organization's defaults to change."""

    default_cadence_id = ma.fields.Integer(
        strict=True, allow_none=True, metadata={"description": "a cadence of the library; null: the install's first"}
    )


class OrganizationSettingsSchema(ma.Schema):
    """The organization's defaults."""

    organization_id = ma.fields.Integer(required=True)
    default_cadence_id = ma.fields.Integer(required=True, allow_none=True)
    default_cadence_name = ma.fields.String(required=True, allow_none=True)
    effective_cadence_name = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "what clients without their own cadence follow"}
    )


def _client_view(view: service.ClientSettingsView) -> dict[str, Any]:
    return {
        "connection_id": view.connection_id,
        "client_name": view.client_name,
        "stored": dict(view.stored),
        "effective": {
            name: {"value": found.value, "source": found.source, "inherited": found.inherited}
            for name, found in view.effective.items()
        },
        "inherited": list(view.inherited()),
        "problems": list(view.problems),
        "updated_at": view.updated_at,
    }


def _defaults() -> service.InstallDefaults:
    return service.InstallDefaults.of(services().settings)


@blp.get("/orgs/<int:org_id>/clients/<int:connection_id>/settings")
@blp.response(200, ClientSettingsSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_client_settings(org_id: int, connection_id: int) -> dict[str, Any]:
    """The client's settings: what it sets itself, and every effective value with where it comes from."""
    context.connection_or_404(org_id, connection_id)
    with services().store.unit_of_work() as uow:
        return _client_view(service.client_settings(uow, org_id, connection_id, _defaults()))


@blp.patch("/orgs/<int:org_id>/clients/<int:connection_id>/settings")
@context.require_role(*context.WRITERS)
@blp.arguments(ClientSettingsPatchSchema)
@blp.response(200, ClientSettingsSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def patch_client_settings(changes: dict[str, Any], org_id: int, connection_id: int) -> dict[str, Any]:
    """Change some settings (null or "" clears one). Audited; owners and accountants only."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = service.update_client_settings(
        found.store, org_id, connection_id, changes, context.actor(), found.clock.now(), _defaults()
    )
    return _client_view(view)


@blp.get("/orgs/<int:org_id>/settings")
@blp.response(200, OrganizationSettingsSchema)
def get_organization_settings(org_id: int) -> dict[str, Any]:
    """The organization's defaults (its default cadence)."""
    with services().store.unit_of_work() as uow:
        return vars_of(service.organization_settings(uow, org_id, _defaults()))


@blp.patch("/orgs/<int:org_id>/settings")
@context.require_role(*context.WRITERS)
@blp.arguments(OrganizationSettingsPatchSchema)
@blp.response(200, OrganizationSettingsSchema)
@blp.alt_response(403, response="FORBIDDEN")
def patch_organization_settings(changes: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Change the organization's defaults. Audited; owners and accountants only."""
    found = services()
    view = service.update_organization_settings(
        found.store, org_id, changes, context.actor(), found.clock.now(), _defaults()
    )
    return vars_of(view)


def vars_of(view: service.OrganizationSettingsView) -> dict[str, Any]:
    """The organization settings view as a response body."""
    return {
        "organization_id": view.organization_id,
        "default_cadence_id": view.default_cadence_id,
        "default_cadence_name": view.default_cadence_name,
        "effective_cadence_name": view.effective_cadence_name,
    }
