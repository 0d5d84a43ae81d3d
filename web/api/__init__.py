"""The JSON API under /api/v1: flask-smorest blueprints over the same services as the web app.

Adding a resource (the pattern every resource module follows):

1. Write `web/api/<resource>.py` exposing `blp = Blueprint("<resource>", __name__, description=...)`
   (a `flask_smorest.Blueprint`) with routes relative to /api/v1, e.g. `@blp.route("/orgs/<int:org_id>/invoices")`.
   Organization-scoped routes carry `<int:org_id>` (web.access: 404 for non-members and for other
   organizations than an API token's); client-scoped ones also `<int:connection_id>` (404 for a client of
   another organization or outside a client-limited member's clients). Other names are refused at start-up.
2. Add "<resource>" to `RESOURCES` below. `init_api` imports it, registers `blp` under /api/v1 and
   exempts it from the form CSRF hook (web.api.auth checks CSRF itself, for session writes only).
3. In views, use web.api.context (`actor()`, `ensure_role`/`require_role`, `visible_connection_ids`,
   `connection_or_404`), web.api.pagination for lists (`PageArgsSchema`, `page_schema`, `page_request`,
   `page_of`), and raise connector.errors (`InvalidInput(field)`, `UnknownRecord`, `InUse`, `NotPermitted`):
   web.api.problems turns them (and every HTTP error) into application/problem+json.
   Declare request bodies and responses with marshmallow schemas (`@blp.arguments`, `@blp.response`) so
   the OpenAPI document, the schemathesis run in `make test`, and the docs page cover the resource.

The OpenAPI 3.1 document is served at /api/v1/openapi.json and rendered at /api/v1/docs (vendored
Swagger UI, web/static/vendor/swagger-ui); both are public. Everything else needs a signed-in session or
`Authorization: Bearer <token>`; see docs/api.md.
"""

from __future__ import annotations

import http
import importlib
import threading
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from connector.config import Settings
from web.api import auth, problems, ratelimit
from web.api.problems import PROBLEM_JSON, ProblemSchema
from web.extensions import SERVICES_KEY, csrf
from web.security import SESSION_COOKIE_NAME

__all__ = ["API_PREFIX", "RESOURCES", "init_api", "init_auth"]

API_PREFIX = "/api/v1"
API_KEY = "nudge.api"  # app.extensions[API_KEY]: the app's NudgeApi
API_VERSION = "1.0.0"

# The resource modules of web.api, each exposing `blp`. Add one name per resource module.
RESOURCES: tuple[str, ...] = (
    "me",
    "organizations",
    "members",
    "tokens",
    "library",
    "settings",
    "customers",
    "plans",
    "invoices",
    "actions",
    "tasks",
    "activity",
    "reports",
    "impact",
)

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token (`POST /api/v1/orgs/{org_id}/tokens`), scoped to one organization.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE_NAME,
        "description": "The web session; unsafe methods also need the X-CSRFToken header.",
    },
}


class SchemaNames:
    """Component names of marshmallow schemas in the OpenAPI document, unique across resource modules.

    A schema is named by its class without "Schema" (apispec's default). When a class of another module already
    has that name (two resources may each define a CustomerSchema), the later one is prefixed with its module's
    name ("SettingsCustomer"); a schema used with `only`/`exclude` gets its own name too, instead of apispec's
    renaming with a warning.
    """

    def __init__(self) -> None:
        self._owners: dict[str, type[ma.Schema]] = {}

    def __call__(self, schema: type[ma.Schema] | ma.Schema) -> str:
        """The component name of `schema` (a class or an instance)."""
        resolved = resolve_schema_cls(schema)
        cls = resolved[0] if isinstance(resolved, list) else resolved
        base = cls.__name__.removesuffix("Schema") or cls.__name__
        name = self._claim(base, cls)
        if isinstance(schema, ma.Schema):
            for label, names in (("Only", schema.only), ("Without", schema.exclude)):
                if names:
                    name += label + "".join(_title(str(field)) for field in sorted(names))
        return name

    def _claim(self, base: str, cls: type[ma.Schema]) -> str:
        module = _title(cls.__module__.rsplit(".", 1)[-1])
        for name in (base, f"{module}{base}"):
            if self._owners.setdefault(name, cls) is cls:
                return name
        number = 2
        while self._owners.setdefault(f"{module}{base}{number}", cls) is not cls:
            number += 1
        return f"{module}{base}{number}"


def _title(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


class NudgeApi(Api):
    """flask-smorest's Api with problem+json errors, documented as such, and a document completed on first read.

    flask-smorest documents the shared error responses when the Api starts and a resource's operations when its
    blueprint is registered: over a third of the cost of `create_app`, paid by every app (each web test makes one),
    though only /api/v1/openapi.json, the docs page and `flask openapi print` read the document. Here those steps
    are queued instead (the routes are mounted at once); the first read of `spec` runs the queue in the original
    order, so the document is byte for byte the one built eagerly.
    """

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, app: Flask, **kwargs: Any) -> None:
        self._undocumented: list[Callable[[APISpec], None]] = []  # documenting steps, in order
        self._documenting = threading.Lock()  # one thread completes the document; the others wait for it
        self._documenter: int | None = None  # that thread: documenting reads `spec` itself, which must not recurse
        super().__init__(app, **kwargs)

    @property
    def spec(self) -> APISpec:
        """The OpenAPI document, with the error responses and the operations of every blueprint registered so far."""
        if self._undocumented and self._documenter != threading.get_ident():
            with self._documenting:
                self._documenter = threading.get_ident()
                try:
                    while self._undocumented:
                        self._undocumented.pop(0)(self._spec)
                finally:
                    self._documenter = None
        return self._spec

    @spec.setter
    def spec(self, value: APISpec) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: list[Any] | None = None, **options: Any) -> None:
        """Mount `blp` now; document it (as flask-smorest's own `register_blueprint` does) on the first read."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)

        def document(spec: APISpec) -> None:
            blp.register_views_in_doc(self, self._app, spec, name=name, parameters=parameters)
            spec.tag({"name": name, "description": blp.description})

        self.document_later(document)

    def document_later(self, step: Callable[[APISpec], None]) -> None:
        """Run `step` on the document on its first read, after the steps queued before it."""
        self._undocumented.append(step)

    def _register_error_handlers(self) -> None:
        """Nothing here: web.api.problems answers errors under /api/ only, leaving the HTML pages alone."""

    def _register_responses(self) -> None:
        """The shared error responses (one per status, and DEFAULT_ERROR) as problem+json, on the first read."""
        self.document_later(self._document_responses)

    def _document_responses(self, spec: APISpec) -> None:
        for status in http.HTTPStatus:
            response: dict[str, object] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, spec, PROBLEM_JSON)
            spec.components.response(status.name, response, lazy=True)
        default: dict[str, object] = {"description": "An error (RFC 9457 problem details)", "schema": ProblemSchema}
        prepare_response(default, spec, PROBLEM_JSON)
        spec.components.response("DEFAULT_ERROR", default, lazy=True)


def _document_security_schemes(spec: APISpec) -> None:
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)


def init_auth(app: Flask) -> None:
    """The API's authentication hook; `create_app` calls it just before web.access.init_app."""
    auth.init_auth(app)


def init_api(app: Flask, settings: Settings | None = None) -> NudgeApi:
    """Mount /api/v1 on `app`: the spec, the docs page, every module of RESOURCES, errors, CSRF and limits
    (`settings`: the app's, by default its services' settings)."""
    app.config.update(
        API_TITLE="Nudge API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Nudge's JSON API. Errors are application/problem+json (RFC 9457). See docs/api.md."
            },
            "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        },
    )
    api = NudgeApi(app, spec_kwargs={"marshmallow_plugin": MarshmallowPlugin(schema_name_resolver=SchemaNames())})
    app.extensions[API_KEY] = api
    api.document_later(_document_security_schemes)
    problems.init_app(app)
    auth.init_checks(app)
    settings = settings or app.extensions[SERVICES_KEY].settings
    ratelimit.init_app(app, settings.web.ratelimit_storage_uri, settings.api.rate_limit)

    from web.api import docs

    app.register_blueprint(docs.bp, url_prefix=API_PREFIX)
    for name in RESOURCES:
        module = importlib.import_module(f"web.api.{name}")
        csrf.exempt(module.blp)
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    return api
