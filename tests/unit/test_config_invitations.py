"""`web.invitation_valid_days`: how long an invitation link works (7 days unless set; 1-90)."""

from __future__ import annotations

import pytest

from connector.config import parse_settings
from connector.errors import ConfigError


def test_invitations_last_a_week_unless_configured() -> None:
    assert parse_settings("mode: development", environ={}, provider_names=[]).web.invitation_valid_days == 7
    text = "web:\n  invitation_valid_days: 14\n"
    assert parse_settings(text, environ={}, provider_names=[]).web.invitation_valid_days == 14


@pytest.mark.parametrize("days", ["0", "91", "soon"])
def test_a_bad_invitation_period_is_refused(days: str) -> None:
    with pytest.raises(ConfigError, match="invitation_valid_days"):
        parse_settings(f"web:\n  invitation_valid_days: {days}\n", environ={}, provider_names=[])
