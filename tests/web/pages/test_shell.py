"""The frame every page shares: sign in, the organization's navigation, sign out; at 1440 and 390 px, axe clean."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.web, pytest.mark.browser]


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_signed_in_frame_and_sign_out(
    browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    page = browse(width)
    expect(page.get_by_test_id("who")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    check(page, "shell")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
