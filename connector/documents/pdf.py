"""Render a document template to HTML and to PDF (WeasyPrint), offline and with every value escaped.

Templates live in `templates/` and run with autoescape on and `StrictUndefined` (a missing value is a bug, not
an empty cell). The filters `money` (a Money) and `date` (a date; short | medium | long | a CLDR pattern) format
for the `locale` given to the render, as the reminder emails do. The shared stylesheet `templates/document.css`
sets the page (A4, margins, page numbers) and wraps long words anywhere (a 300-character customer name never runs
off the page); right-to-left names are laid out in their own direction by pango (templates mark them `dir="auto"`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date
from typing import Any

import jinja2
from babel import Locale
from weasyprint import CSS, HTML

from connector.documents.fetching import PACKAGE_DIR, LocalOnlyFetcher
from connector.domain.money import Money
from connector.errors import NudgeError
from connector.mail.rendering import format_day, format_money, parse_locale

TEMPLATE_DIR = PACKAGE_DIR / "templates"
STYLESHEET = TEMPLATE_DIR / "document.css"


class DocumentError(NudgeError):
    """A document could not be rendered (a missing template or value: a bug of the caller, never the data's)."""


def render_html(template: str, variables: Mapping[str, Any], *, locale: str | Locale) -> str:
    """The HTML of document `template` (a file of `templates/`) for `variables`, amounts and dates in `locale`."""
    loc = parse_locale(locale)
    try:
        return _environment().get_template(template).render({**variables, "locale": str(loc), "_locale": loc})
    except jinja2.TemplateError as exc:
        raise DocumentError(f"document {template!r} could not be rendered: {exc}") from exc


def html_to_pdf(html: str, *, fetcher: LocalOnlyFetcher | None = None) -> bytes:
    """`html` as PDF bytes with the package's stylesheet; resources other than data: URLs and the package's own
    files are refused (left out), so rendering never touches the network."""
    fetch = fetcher or LocalOnlyFetcher()
    document = HTML(string=html, base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=fetch)
    pdf: bytes = document.write_pdf(stylesheets=[_stylesheet(fetch)])
    return pdf


def render_pdf(
    template: str, variables: Mapping[str, Any], *, locale: str | Locale, fetcher: LocalOnlyFetcher | None = None
) -> bytes:
    """Document `template` rendered for `variables` in `locale`, as PDF bytes."""
    return html_to_pdf(render_html(template, variables, locale=locale), fetcher=fetcher)


def _stylesheet(fetcher: LocalOnlyFetcher) -> CSS:
    return CSS(string=_stylesheet_text(), base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=fetcher)


@functools.cache
def _stylesheet_text() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = _money
    env.filters["date"] = _date
    return env


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, value: Money) -> str:
    return format_money(value, context["_locale"])


@jinja2.pass_context
def _date(context: jinja2.runtime.Context, value: date | None, form: str = "medium") -> str:
    return "" if value is None else format_day(value, context["_locale"], form)
