"""When the session starts the page tests' demo in the background (tests/support/pages_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pages_demo import wanted

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "markexpr", "keyword", "starts"),
    [
        ([], "", "", True),  # testpaths: the whole suite (`make test`)
        (["tests"], "", "", True),
        (["tests/web"], "", "", True),
        (["tests/web/pages"], "", "", True),
        (["tests/web/pages/test_inbox.py::test_inbox_review_and_filter"], "", "", True),
        (["tests/unit", "tests/service"], "", "", False),
        (["tests/web/test_auth.py"], "", "", False),
        (["tests"], "unit", "", False),  # `make test-unit`
        (["tests"], "web and not browser", "", True),  # it may select the pages
        (["tests"], "", "inbox", False),  # a keyword may select any test: no
    ],
)
def test_the_demo_starts_only_when_the_page_tests_may_run(
    args: list[str], markexpr: str, keyword: str, starts: bool
) -> None:
    assert wanted(args, ROOT, markexpr, keyword) is starts
