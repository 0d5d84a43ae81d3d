"""Werkzeug's URL builders compiled once per test process, not once per route of every app the tests make.

Binding a rule to an app's URL map compiles two builder functions for it through `ast` and `compile`: with the
lazily documented API (web.api.NudgeApi), most of what `create_app` costs, paid again by each of the hundreds of
apps the web tests make. A builder depends only on its rule's text, trace (the parsed parts), defaults and
converters, and holds no state of its own (the rule comes in as its first argument), so two apps' equal rules
can share one. Production builds one app per process and is left as werkzeug made it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule

_Builder = Callable[..., tuple[str, str]]


def share_builders() -> None:
    """Make `Rule._compile_builder` reuse the builder compiled for an equal rule earlier in this process."""
    compile_builder = Rule._compile_builder
    if getattr(compile_builder, "shared", False):
        return
    compiled: dict[tuple[Any, ...], _Builder] = {}

    def shared(rule: Rule, *args: Any, **kwargs: Any) -> _Builder:
        key = (
            type(rule),
            rule.rule,
            tuple(rule._trace),
            tuple(sorted((name, repr(value)) for name, value in (rule.defaults or {}).items())),
            tuple(sorted((name, type(converter).__qualname__) for name, converter in rule._converters.items())),
            args,
            tuple(sorted(kwargs.items())),
        )
        builder = compiled.get(key)
        if builder is None:
            builder = compiled[key] = compile_builder(rule, *args, **kwargs)
        return builder

    shared.shared = True  # type: ignore[attr-defined]
    Rule._compile_builder = shared  # type: ignore[method-assign]
