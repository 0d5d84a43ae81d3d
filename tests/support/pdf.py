"""The text of a PDF as Debian's `pdftotext` (poppler-utils) reads it: what a person copying from the document gets.

Skipped, with the reason shown, when pdftotext is not installed (`make pdftotext` installs it as root) — unless
NUDGE_REQUIRE_PDFTOTEXT=1 (CI, .ci/run), where a missing pdftotext fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def pdftotext_path() -> str:
    """The pdftotext executable, or skip (fail under NUDGE_REQUIRE_PDFTOTEXT=1) when there is none."""
    found = shutil.which("pdftotext")
    if found is None:
        reason = "pdftotext (Debian poppler-utils) is not installed: run `make pdftotext` as root"
        if os.environ.get("NUDGE_REQUIRE_PDFTOTEXT") == "1":
            pytest.fail(f"NUDGE_REQUIRE_PDFTOTEXT=1 but {reason}")
        pytest.skip(reason)
    return found


def pdf_text(pdf: bytes, *, layout: bool = False) -> str:
    """The text of `pdf` (reading order; `layout`: columns kept, one table row a line)."""
    assert pdf.startswith(b"%PDF-"), "not a PDF"
    command = [pdftotext_path(), "-q", "-enc", "UTF-8", *(["-layout"] if layout else []), "-", "-"]
    done = subprocess.run(command, input=pdf, capture_output=True, check=True, timeout=60)
    return done.stdout.decode("utf-8")


def words(text: str) -> str:
    """`text` with every run of whitespace (line breaks of wrapped cells) made one space."""
    return " ".join(text.split())
