"""Schemathesis over the API's own OpenAPI document, against the app with two organizations' data.

Every operation of /api/v1/openapi.json (endpoints added later are covered without editing this file) is
called with generated requests as organization A's owner, each example either with A's API token or with
the owner's signed-in session (cookie and X-CSRFToken, so session-only writes are reached too). Path ids
are drawn from both organizations' real rows (and a few that exist nowhere), so the checks see real
answers, not only 404s:

- no 5xx; every status code is documented; every response body and content type matches the document;
- no response contains an id or a text of organization B (see tests/web/api/seed.py).

Bounded: a fixed number of examples per operation, derandomized (the same cases every run), on SQLite, a
fresh app and database per operation so one operation's writes do not steer another's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connector.config import ApiSettings, settings_for_tests
from connector.storage import Store
from tests.web.api.seed import MARKER_B, PASSWORD, SeededOrg, foreign_ids, seed_two_organizations
from tests.web.harness import csrf_token
from web import create_app
from web.extensions import SERVICES_KEY
from web.security import SESSION_COOKIE_NAME

# Examples per operation, shrinking as the API grows so the whole run stays near TOTAL_EXAMPLES calls.
MAX_EXAMPLES, MIN_EXAMPLES, TOTAL_EXAMPLES = 25, 8, 800
MISSING_IDS = (0, 1, 999999)  # ids that name nothing (or a row of a table the path does not mean)


def _build(folder: Path) -> tuple[Flask, Store, SeededOrg, SeededOrg]:
    base = settings_for_tests(f"sqlite:///{folder / 'api.sqlite3'}")
    app = create_app(replace(base, api=ApiSettings(rate_limit="100000 per minute")))
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    alpha, beta = seed_two_organizations(store)
    return app, store, alpha, beta


def _operations(folder: Path) -> list[str]:
    app, store, *_ = _build(folder)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        return [result.ok().label for result in schema.get_all_operations()]
    finally:
        store.dispose()


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _walk(item, str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key)
    else:
        yield key, value


def _is_id_key(key: str) -> bool:
    return key == "id" or key.endswith(("_id", "_ids", "Id"))


def no_foreign_data(foreign: set[int]) -> Any:
    """A check: the body holds no id of organization B's rows under an id field, and no text of B's."""

    def check(ctx: Any, response: Any, case: Any) -> None:
        text = response.text or ""
        if MARKER_B in text.lower():
            raise AssertionError(f"the response of organization A shows organization B's data: {text[:300]}")
        try:
            body = json.loads(text) if text else None
        except ValueError:
            return
        leaked = sorted(
            {value for key, value in _walk(body) if _is_id_key(key) and isinstance(value, int) and value in foreign}
        )
        if leaked:
            raise AssertionError(f"the response of organization A names ids of organization B's rows: {leaked}")

    check.__name__ = "no_foreign_data"
    return check


def _path_choices(name: str, alpha: SeededOrg, beta: SeededOrg) -> list[int]:
    if name == "org_id":
        return [alpha.org_id, alpha.org_id, alpha.org_id, beta.org_id, MISSING_IDS[-1]]
    kind = name.removesuffix("_id")
    known = alpha.ids.get(kind, []) + beta.ids.get(kind, [])
    if not known:  # a path id of a kind the seed does not make: any row of either organization
        known = [row_id for ids in (*alpha.ids.values(), *beta.ids.values()) for row_id in ids]
    return [*known, *MISSING_IDS]


def test_every_operation_conforms_and_shows_nothing_of_another_organization(tmp_path: Path) -> None:
    labels = _operations(tmp_path / "probe")
    assert "GET /api/v1/me" in labels
    examples = max(MIN_EXAMPLES, min(MAX_EXAMPLES, TOTAL_EXAMPLES // len(labels)))
    failures: list[str] = []
    for number, label in enumerate(labels):
        folder = tmp_path / f"op{number}"
        folder.mkdir()
        failure = _run_operation(folder, label, examples)
        if failure:
            failures.append(f"{label}: {failure}")
    assert failures == [], "\n\n".join(failures)


USER_AGENT = "nudge-schemathesis"  # the session is bound to the browser that signed in (Flask-Login "strong")


def _session(app: Flask, alpha: SeededOrg) -> tuple[dict[str, str], dict[str, str]]:
    """Sign in as A's owner: (cookies, headers) that carry the session and its CSRF token."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    page = client.get("/login")
    answer = client.post(
        "/login", data={"csrf_token": csrf_token(page.text), "email": alpha.owner_email, "password": PASSWORD}
    )
    assert answer.status_code == 302, answer.text
    csrf = client.get("/api/v1/me").get_json()["csrf_token"]
    cookie = client.get_cookie(SESSION_COOKIE_NAME)
    assert cookie is not None
    # Flask-Login binds the session to the address and browser that signed in; schemathesis's WSGI transport
    # sends no REMOTE_ADDR, so the address comes as X-Forwarded-For (which Flask-Login reads first).
    headers = {"X-CSRFToken": csrf, "User-Agent": USER_AGENT, "X-Forwarded-For": "127.0.0.1"}
    return {SESSION_COOKIE_NAME: cookie.value}, headers


def _run_operation(folder: Path, label: str, examples: int = MAX_EXAMPLES) -> str:
    """Run one operation's examples; the first failure's text, or "" when every example passed."""
    app, store, alpha, beta = _build(folder)
    try:
        cookies, session_headers = _session(app, alpha)
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        operation = schema[label.split(" ", 1)[1]][label.split(" ", 1)[0]]
        foreign = foreign_ids(store, beta.org_id)
        assert beta.org_id in foreign
        names = [parameter.name for parameter in operation.path_parameters]
        choices = st.fixed_dictionaries({name: st.sampled_from(_path_choices(name, alpha, beta)) for name in names})
        cases = choices.flatmap(lambda ids: operation.as_strategy(path_parameters=ids))
        token_headers = {"Authorization": f"Bearer {alpha.secret}"}
        checks = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            no_foreign_data(foreign),
        ]

        @settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases, by_session=st.booleans())
        def run(case: Any, by_session: bool) -> None:
            if by_session:
                # schemathesis fills in the bearer scheme with made-up tokens; a browser sends none.
                if case.headers:
                    case.headers.pop("Authorization", None)
                case.call_and_validate(headers=session_headers, cookies=cookies, checks=checks)
            else:
                case.call_and_validate(headers=token_headers, checks=checks)

        try:
            run()
        except Exception as exc:  # report every operation, not only the first that fails
            return f"{type(exc).__name__}: {exc}"[:4000]
        return ""
    finally:
        store.dispose()


@pytest.mark.parametrize("marker", [MARKER_B])
def test_the_leak_check_itself_catches_a_leak(marker: str) -> None:
    check = no_foreign_data({400010})

    class Answer:
        def __init__(self, text: str) -> None:
            self.text = text

    check(None, Answer('{"items": [{"id": 5, "connection_id": 1000}]}'), None)
    with pytest.raises(AssertionError, match="ids of organization B"):
        check(None, Answer('{"items": [{"id": 5, "connection_ids": [1000, 400010]}]}'), None)
    with pytest.raises(AssertionError, match="shows organization B"):
        check(None, Answer(f'{{"name": "{marker}-inv-0-1"}}'), None)
