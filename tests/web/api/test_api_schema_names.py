"""Component names in the OpenAPI document stay unique when two resource modules pick the same class name."""

from __future__ import annotations

import marshmallow as ma
from flask import Flask
from flask_smorest import Blueprint

from web import create_app
from web.api import API_KEY, API_PREFIX, SchemaNames
from web.api.pagination import page_schema
from web.extensions import SERVICES_KEY


def _schema(module: str, **fields: ma.fields.Field) -> type[ma.Schema]:
    return type("CustomerSchema", (ma.Schema,), {**fields, "__module__": module})


def test_the_resolver_prefixes_a_clash_with_the_module_and_names_modifiers() -> None:
    ops = _schema("web.api.invoices", id=ma.fields.Integer())
    settings = _schema("web.api.client_settings", name=ma.fields.String())
    names = SchemaNames()
    assert names(ops) == "Customer"
    assert names(settings) == "ClientSettingsCustomer"
    assert names(ops()) == "Customer"  # instances and classes alike, every time
    assert names(ops(only=("id",))) == "CustomerOnlyId"
    assert names(settings(exclude=("name",))) == "ClientSettingsCustomerWithoutName"
    assert page_schema(ops) is page_schema(ops)
    assert page_schema(ops) is not page_schema(settings)
    assert page_schema(settings).__module__ == "web.api.client_settings"


def test_two_resources_with_a_customer_schema_each_make_one_valid_document(app: Flask) -> None:
    services = app.extensions[SERVICES_KEY]
    fresh = create_app(services.settings, services)
    api = fresh.extensions[API_KEY]
    for module, field in (("web.api.alpha_things", "id"), ("web.api.beta_things", "name")):
        schema = _schema(module, **{field: ma.fields.String(required=True)})
        blp = Blueprint(module.rsplit(".", 1)[-1], module)

        @blp.get(f"/orgs/<int:org_id>/{module.rsplit('.', 1)[-1]}")
        @blp.response(200, page_schema(schema))
        def listing(org_id: int) -> dict[str, object]:
            return {"items": [], "next_cursor": None}

        api.register_blueprint(blp, url_prefix=API_PREFIX)
    document = fresh.test_client().get("/api/v1/openapi.json").get_json()  # warnings are errors in the tests
    schemas = document["components"]["schemas"]
    assert {"Customer", "BetaThingsCustomer", "CustomerPage", "BetaThingsCustomerPage"} <= set(schemas)
    assert "id" in schemas["Customer"]["properties"]
    assert "name" in schemas["BetaThingsCustomer"]["properties"]
