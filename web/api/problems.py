"""Errors under /api/ as RFC 9457 problem details (`application/problem+json`), never an HTML page or a trace.

Every problem has `type`, `title`, `status`, `detail` and `instance` (the request path); input errors add
`errors`, a list of {field, message} naming the request field that was wrong. Mapped here:
`connector.errors` InvalidInput → 422, UnknownRecord → 404, InUse → 409, NotPermitted → 403 (any other
ChangeRefused → 422); marshmallow/webargs validation (flask-smorest's 422) → 422 with one entry per field;
401 carries `WWW-Authenticate: Bearer`; 405 keeps `Allow`; 429 keeps `Retry-After` and the RateLimit headers;
anything else is a bare 500. The HTML pages keep their own error pages (web/__init__.py delegates here for
API paths only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, json, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from connector.errors import ChangeRefused, InUse, InvalidInput, NotPermitted, UnknownRecord

PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/"
TYPE_BASE = "urn:nudge:problem:"  # problem types are names (docs/api.md lists them), not pages to fetch
BEARER_CHALLENGE = 'Bearer realm="nudge"'
UNAUTHORIZED = "Sign in, or send an API token as `Authorization: Bearer <token>`."
NOT_FOUND = "There is nothing here, or you do not have access to it."

log = logging.getLogger(__name__)

# The change-refused family, most specific first: (class, status, type slug).
CHANGE_REFUSED: tuple[tuple[type[ChangeRefused], int, str], ...] = (
    (InvalidInput, 422, "invalid-input"),
    (UnknownRecord, 404, "not-found"),
    (InUse, 409, "in-use"),
    (NotPermitted, 403, "not-permitted"),
    (ChangeRefused, 422, "change-refused"),
)
# Headers an HTTP error may carry through to the problem response.
PASSED_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
PASSED_PREFIXES = ("RateLimit",)


class FieldErrorSchema(ma.Schema):
    """One wrong input: the request field (a dotted path; query or JSON body) and what is expected."""

    field = ma.fields.String(
        required=True, metadata={"description": "the request field, e.g. `limit` or `steps.2.offset`"}
    )
    message = ma.fields.String(required=True)


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem: every error of the API has this shape."""

    type = ma.fields.String(required=True, metadata={"description": "`about:blank` or a `urn:nudge:problem:` name"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    instance = ma.fields.String(required=True, metadata={"description": "the request path"})
    errors = ma.fields.List(ma.fields.Nested(FieldErrorSchema), metadata={"description": "input errors, by field"})


def is_api_request() -> bool:
    """Is the current request under /api/ (its errors are problems, not pages)?"""
    return request.path == API_PREFIX.rstrip("/") or request.path.startswith(API_PREFIX)


def problem(
    status: int,
    detail: str = "",
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response (`slug` names the problem type; none: `about:blank`, titled by the status)."""
    phrase = _phrase(status)
    body: dict[str, Any] = {
        "type": f"{TYPE_BASE}{slug}" if slug else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def flatten_messages(messages: Any, path: str = "") -> Iterator[dict[str, str]]:
    """webargs/marshmallow messages ({location: {field: [msg]}} or nested) as {field, message} entries."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                yield from flatten_messages(value, path)
            else:
                yield from flatten_messages(value, f"{path}.{key}" if path else str(key))
    elif isinstance(messages, list | tuple):
        for item in messages:
            yield from flatten_messages(item, path)
    else:
        yield {"field": path, "message": str(messages)}


def _validation_errors(error: HTTPException) -> list[dict[str, str]]:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not isinstance(messages, Mapping):
        return []
    entries: list[dict[str, str]] = []
    for location, fields in messages.items():
        # webargs keys messages by location (json, query, ...): the field name alone is what the client sent.
        known = location in {"json", "query", "querystring", "form", "headers", "files", "view_args", "path"}
        entries.extend(flatten_messages(fields if known else {location: fields}))
    return entries


def from_http_exception(error: HTTPException) -> Response:
    """The problem for an HTTP error raised anywhere while handling an API request."""
    status = error.code or 500
    if status >= 500:
        if isinstance(error, InternalServerError) and error.original_exception is not None:
            log.error("API request failed", exc_info=error.original_exception)
        return problem(status)  # never the exception's text: it may name internals
    headers = {
        name: value
        for name, value in error.get_response().headers.items()
        if name in PASSED_HEADERS or name.startswith(PASSED_PREFIXES)
    }
    data = getattr(error, "data", None) or {}
    headers.update(data.get("headers") or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
        return problem(401, _detail(error, UNAUTHORIZED), slug="unauthorized", headers=headers)
    if isinstance(error, CSRFError):
        return problem(
            400,
            "Send the session's CSRF token in the X-CSRFToken header, or use an API token.",
            title="CSRF token missing or invalid",
            slug="csrf",
            headers=headers,
        )
    errors = _validation_errors(error)
    if errors:
        return problem(status, "The request has invalid fields.", slug="invalid-input", errors=errors, headers=headers)
    return problem(status, _detail(error, NOT_FOUND if status == 404 else ""), headers=headers)


def _detail(error: HTTPException, fallback: str) -> str:
    """The message given to `abort` (smorest's `message` or werkzeug's `description`), else `fallback`."""
    data = getattr(error, "data", None) or {}
    if isinstance(data.get("message"), str):
        return str(data["message"])
    if error.description and error.description != type(error).description:
        return error.description
    return fallback or error.description or ""


def from_change_refused(error: ChangeRefused) -> Response:
    """The problem for a refused change: its status by kind, the field it names, the service's message."""
    status, slug = next((status, slug) for kind, status, slug in CHANGE_REFUSED if isinstance(error, kind))
    errors = [{"field": error.field, "message": error.user_message}] if error.field else None
    if status == 404:
        errors = None  # an unknown id answers like a missing route: nothing to learn from it
    return problem(status, error.user_message, slug=slug, errors=errors)


def init_app(app: Flask) -> None:
    """Answer errors under /api/ with problems; everywhere else keep what the app did before."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        return from_http_exception(error) if is_api_request() else error

    @app.errorhandler(ChangeRefused)
    def change_refused(error: ChangeRefused) -> Response:
        if not is_api_request():
            raise error  # the HTML views handle their own refusals; an unhandled one stays a 500
        return from_change_refused(error)
