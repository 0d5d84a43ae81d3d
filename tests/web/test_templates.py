"""The templates' layout (web/README.md): one folder per blueprint, shared pages at the top, nothing dangling."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

import web

WEB = Path(web.__file__).parent
SHARED = {"base.html", "_ui.html", "error.html", "oauth_redirect.html"}  # layout, macros, error pages, OAuth hop
_RENDERED = re.compile(r"""(?:render_template\(\s*|^\s*)"([\w/]+\.html)\"""", re.M)
_REFERENCED = re.compile(r"""{%-?\s*(?:extends|include|import|from)\s+"([^"]+)\"""")


def _templates() -> list[str]:
    root = WEB / "templates"
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.html"))


def test_every_template_sits_in_its_blueprints_folder_or_is_shared(app: Flask) -> None:
    for name in _templates():
        folder, _, _rest = name.rpartition("/")
        if folder:
            # A page's blueprint is `<module>_page` (web/pages) with its templates in `<module>/`.
            assert folder in app.blueprints or f"{folder}_page" in app.blueprints, (
                f"{name}: {folder}/ names no blueprint"
            )
        else:
            assert name in SHARED, f"{name} belongs in the folder of the blueprint that renders it"


def test_every_rendered_or_referenced_template_exists() -> None:
    templates = set(_templates())
    names: set[str] = set()
    for module in WEB.rglob("*.py"):  # web/api/ too
        names.update(_RENDERED.findall(module.read_text(encoding="utf-8")))
    for template in templates:
        names.update(_REFERENCED.findall((WEB / "templates" / template).read_text(encoding="utf-8")))
    assert names, "no template names found: the patterns no longer match the code"
    assert names <= templates, f"missing: {sorted(names - templates)}"
    unused = templates - names
    assert unused == set(), f"never rendered: {sorted(unused)}"
