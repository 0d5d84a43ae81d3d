"""The account pages in a real browser on the demo's data, at 1440 and 390 px, axe clean: the account, its
sessions, two-factor set-up with its QR code, and the password reset request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.web, pytest.mark.browser]


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_account_pages(browse: Callable[..., Any], check: Callable[[Any, str], None], width: str) -> None:
    page = browse(width)
    page.goto("/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    check(page, "account")

    page.get_by_role("link", name="Your sessions").click()
    expect(page.get_by_text("This session")).to_be_visible()
    check(page, "account-sessions")

    page.goto("/account/two-factor")
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name="Set up two-factor sign-in").click()
    expect(page.get_by_alt_text("QR code to add Nudge to your authenticator app")).to_be_visible()
    check(page, "account-two-factor")

    page.goto("/password/forgot")
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    check(page, "password-forgot")
