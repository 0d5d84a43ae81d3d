"""/healthz: 200 when the database answers, 503 (with nothing of the error) when it does not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from connector.config import settings_for_tests
from connector.storage import Store
from tests.support.net import free_port
from web import create_app
from web.extensions import SERVICES_KEY


def test_healthz_ok_without_signing_in(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"] == "no-cache, no-store"


def test_healthz_503_when_the_sqlite_file_cannot_be_opened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = tmp_path / "data" / "nudge.sqlite3"
    app = create_app(settings_for_tests(f"sqlite:///{database}"))
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    client = app.test_client()
    assert client.get("/healthz").status_code == 200

    # Take the database away: drop pooled connections and put a directory where the file was.
    store.dispose()
    for leftover in database.parent.glob("nudge.sqlite3*"):
        leftover.unlink()
    database.mkdir()

    with caplog.at_level(logging.WARNING):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "degraded", "database": "unreachable"}
    assert str(tmp_path) not in response.text
    assert "database unreachable" in caplog.text
    assert str(tmp_path) not in caplog.text


def test_healthz_503_when_the_database_server_refuses(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+psycopg://nudge:pw-hunter2-secret@127.0.0.1:{free_port()}/nudge"
    app = create_app(settings_for_tests(url))
    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "degraded", "database": "unreachable"}
    assert "pw-hunter2-secret" not in response.text
    assert "pw-hunter2-secret" not in caplog.text
