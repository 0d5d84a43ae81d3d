"""The rendered API documentation at /api/v1/docs: vendored Swagger UI reading /api/v1/openapi.json.

No CDN and no inline script: the page loads web/static/vendor/swagger-ui and web/static/api-docs.js,
which reads the document's URL from a data attribute, so it works under the app's Content-Security-Policy.
Swagger UI's stylesheet draws its icons as data: images, which the app's policy allows (web/security.py).
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask.typing import ResponseReturnValue

bp = Blueprint("api_docs", __name__)


@bp.get("/docs")
def page() -> ResponseReturnValue:
    """The Swagger UI page for the OpenAPI document."""
    return render_template("api_docs/docs.html", spec_url=url_for("api-docs.openapi_json"))
