"""/privacy and /terms: a placeholder by default, a redirect to the business's own page, or its file in the frame."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.config import Settings, parse_settings
from connector.errors import ConfigError
from connector.storage import Store
from web import create_app
from web.extensions import SERVICES_KEY


def _app(settings: Settings, **web: str) -> Iterator[Flask]:
    app = create_app(replace(settings, web=replace(settings.web, **web)))
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    yield app
    store.dispose()


@pytest.mark.parametrize(("path", "key"), [("/privacy", "privacy"), ("/terms", "terms")])
def test_the_default_page_is_a_placeholder_that_says_how_to_replace_it(
    client: FlaskClient, path: str, key: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"Placeholder — replace via <code>web.{key}_file</code>" in page
    assert 'href="/privacy"' in page
    assert 'href="/terms"' in page


def test_a_configured_url_is_a_redirect(settings: Settings) -> None:
    for app in _app(settings, privacy_url="https://books.example/privacy"):
        response = app.test_client().get("/privacy")
        assert response.status_code == 302
        assert response.headers["Location"] == "https://books.example/privacy"
        assert "Placeholder" in app.test_client().get("/terms").get_data(as_text=True)


def test_a_markdown_file_is_shown_escaped_in_the_site_frame(settings: Settings, tmp_path: Path) -> None:
    terms = tmp_path / "terms.md"
    terms.write_text(
        "# Our terms\n\nWe chase **politely**. See [our site](https://books.example/).\n\n"
        "- one\n- two <script>alert(1)</script>\n",
        encoding="utf-8",
    )
    for app in _app(settings, terms_file=str(terms)):
        page = app.test_client().get("/terms").get_data(as_text=True)
        assert "<h2>Our terms</h2>" in page
        assert 'We chase <strong>politely</strong>. See <a href="https://books.example/">our site</a>.' in page
        assert "<li>two &lt;script&gt;alert(1)&lt;/script&gt;</li>" in page
        assert "<script>alert" not in page
        assert "Placeholder" not in page


def test_an_html_file_is_shown_as_written(settings: Settings, tmp_path: Path) -> None:
    privacy = tmp_path / "privacy.html"
    privacy.write_text("<h2>What we keep</h2><p>Invoices.</p>", encoding="utf-8")
    for app in _app(settings, privacy_file=str(privacy)):
        page = app.test_client().get("/privacy").get_data(as_text=True)
        assert "<h2>What we keep</h2><p>Invoices.</p>" in page


def test_config_checks_the_files_and_refuses_both_at_once(tmp_path: Path) -> None:
    (tmp_path / "privacy.md").write_text("# Privacy\n", encoding="utf-8")
    text = "web:\n  privacy_file: privacy.md\n  terms_file: missing.md\n"
    with pytest.raises(ConfigError) as refused:
        parse_settings(text, environ={}, base_dir=tmp_path, provider_names=[])
    assert "web.terms_file" in str(refused.value)
    assert "no such file" in str(refused.value)
    settings = parse_settings("web:\n  privacy_file: privacy.md\n", environ={}, base_dir=tmp_path, provider_names=[])
    assert settings.web.privacy_file == str((tmp_path / "privacy.md").resolve())
    both = "web:\n  privacy_file: privacy.md\n  privacy_url: https://books.example/privacy\n"
    with pytest.raises(ConfigError, match="privacy_url or privacy_file, not both"):
        parse_settings(both, environ={}, base_dir=tmp_path, provider_names=[])
    with pytest.raises(ConfigError, match=r"web\.terms_url"):
        parse_settings("web:\n  terms_url: javascript:alert(1)\n", environ={}, base_dir=tmp_path, provider_names=[])
