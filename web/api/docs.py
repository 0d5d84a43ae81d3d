"""The rendered API documentation at /api/v1/docs: vendored Swagger UI reading /api/v1/openapi.json.

No CDN and no inline script: the page loads web/static/vendor/swagger-ui and web/static/api-docs.js,
which reads the document's URL from a data attribute, so it works under the app's Content-Security-Policy.
Swagger UI's stylesheet draws its icons as data: images, so this page alone also allows `img-src data:`.
"""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, url_for
from flask.typing import ResponseReturnValue

from web.security import CONTENT_SECURITY_POLICY

bp = Blueprint("api_docs", __name__)

DOCS_CSP = f"{CONTENT_SECURITY_POLICY}; img-src 'self' data:"


@bp.get("/docs")
def page() -> ResponseReturnValue:
    """The Swagger UI page for the OpenAPI document."""
    response = make_response(render_template("api_docs/docs.html", spec_url=url_for("api-docs.openapi_json")))
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
