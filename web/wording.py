"""How the web app turns a service's message into a sentence on a page or a flash."""

from __future__ import annotations

FALLBACK = "Something went wrong."


def sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop (services word their messages as clauses)."""
    text = text.strip()
    if not text:
        return FALLBACK
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
