"""`/privacy` and `/terms`: the pages both app stores' listings link to (docs/marketplace.md), served from config.

`web.privacy_url` / `web.terms_url` redirect to the business's own page; else `web.privacy_file` /
`web.terms_file` is shown in the site frame (an `.html` file as written, any other file as a small, escaped
Markdown subset: `#` headings, paragraphs, `-` lists, [links](https://...)); else a placeholder that says how to
replace it. Public: no sign-in needed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from flask import Blueprint, abort, redirect, render_template
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from web.extensions import services

bp = Blueprint("legal", __name__)

TITLES = {"privacy": "Privacy policy", "terms": "Terms of service"}
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+|/[^\s)]*|mailto:[^\s)]+)\)")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    """The privacy policy."""
    return _page("privacy")


@bp.get("/terms")
def terms() -> ResponseReturnValue:
    """The terms of service."""
    return _page("terms")


def _page(page: str) -> ResponseReturnValue:
    web = services().settings.web
    url, file = getattr(web, f"{page}_url"), getattr(web, f"{page}_file")
    if url:
        return redirect(url, code=302)
    body: Markup | None = None
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            abort(503)  # checked when the config was loaded: it went away or is not text since
        body = Markup(text) if file.lower().endswith((".html", ".htm")) else markdown_subset(text)  # noqa: S704
    return render_template("legal/page.html", page=page, title=TITLES[page], body=body)


def markdown_subset(text: str) -> Markup:
    """Escaped HTML for `#` headings, paragraphs, `-`/`*` lists, **bold** and [links](...): enough for a policy,
    and nothing in the file can inject markup."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{' '.join(paragraph)}</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
            items.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = re.match(r"^(#{1,4})\s+(.*)$", line)
        if not line:
            flush()
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 1, 5)  # the page's own title is the h1
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"^[-*]\s+", line):
            if paragraph:
                flush()
            items.append(_inline(line[1:].strip()))
        else:
            if items:
                flush()
            paragraph.append(_inline(line))
    flush()
    return Markup("\n".join(blocks))  # noqa: S704 - every piece of text was escaped above


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    escaped = _LINK.sub(lambda match: f'<a href="{match.group(2)}">{match.group(1)}</a>', escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)
