"""Account security in the connector: emailed single-use links, per-session records, TOTP two-factor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from connector.accounts import security, sessions, two_factor
from connector.accounts.passwords import verify_password
from connector.accounts.users import create_user, end_sessions
from connector.domain.model import Role
from connector.mail.message import OutgoingMessage, SentReceipt
from connector.storage import Store
from connector.storage.tables import AccountToken, RecoveryCode, User
from connector.vault.keyring import Vault, generate_key

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new long passphrase"


class RecordingMailer:
    """A Mailer that keeps what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> SentReceipt:
        self.sent.append(message)
        return SentReceipt(f"<{len(self.sent)}@test>", tuple(message.to), (), "")


def _user(store: Store, email: str = "ada@example.com") -> int:
    with store.unit_of_work() as uow:
        user = create_user(uow, email, PASSWORD)
        org = uow.organizations.add("Alpha Books")
        uow.memberships.add(user.id, org.id, Role.OWNER)
        uow.commit()
        return user.id


def _issue(store: Store, user_id: int, purpose: str, now: datetime = NOW) -> str:
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        token = security.issue(uow, user, purpose, now)
        uow.commit()
        return token


def test_a_reset_link_is_stored_only_as_a_hash_and_works_once(store: Store) -> None:
    user_id = _user(store)
    token = _issue(store, user_id, security.PASSWORD_RESET)
    with store.unit_of_work() as uow:
        rows = uow.session.query(AccountToken).all()
        assert [row.token_hash for row in rows] == [security.hash_token(token)]
        assert token not in {row.token_hash for row in rows}
        security.reset_password(uow, token, NEW_PASSWORD, NOW + timedelta(minutes=29))
        uow.commit()
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        assert verify_password(user.password_hash, NEW_PASSWORD)
        assert user.email_verified_at is not None  # the link reached the mailbox
        with pytest.raises(security.LinkError, match="already used"):
            security.reset_password(uow, token, "yet another long passphrase", NOW + timedelta(minutes=29))


def test_a_reset_link_expires_after_30_minutes(store: Store) -> None:
    user_id = _user(store)
    token = _issue(store, user_id, security.PASSWORD_RESET)
    with store.unit_of_work() as uow:
        assert security.check_reset(uow, token, NOW + timedelta(minutes=29, seconds=59)).id == user_id
        with pytest.raises(security.LinkError, match="expired"):
            security.check_reset(uow, token, NOW + timedelta(minutes=30))


@pytest.mark.parametrize(
    "alter", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t + "x", lambda t: "", lambda t: t * 20]
)
def test_an_altered_link_names_nothing(store: Store, alter: object) -> None:
    user_id = _user(store)
    token = _issue(store, user_id, security.PASSWORD_RESET)
    with store.unit_of_work() as uow, pytest.raises(security.LinkError, match="not valid"):
        security.check_reset(uow, alter(token), NOW)  # type: ignore[operator]


def test_a_link_of_one_purpose_does_not_serve_another_and_a_newer_link_retires_the_older(store: Store) -> None:
    user_id = _user(store)
    verify = _issue(store, user_id, security.VERIFY_EMAIL)
    with store.unit_of_work() as uow, pytest.raises(security.LinkError, match="not valid"):
        security.check_reset(uow, verify, NOW)
    first = _issue(store, user_id, security.PASSWORD_RESET)
    second = _issue(store, user_id, security.PASSWORD_RESET, NOW + timedelta(minutes=1))
    with store.unit_of_work() as uow:
        with pytest.raises(security.LinkError, match="already used"):
            security.check_reset(uow, first, NOW + timedelta(minutes=2))
        assert security.check_reset(uow, second, NOW + timedelta(minutes=2)).id == user_id


def test_a_weak_new_password_leaves_the_link_usable(store: Store) -> None:
    user_id = _user(store)
    token = _issue(store, user_id, security.PASSWORD_RESET)
    with store.unit_of_work() as uow, pytest.raises(ValueError, match="at least 10"):
        security.reset_password(uow, token, "short", NOW)
    with store.unit_of_work() as uow:
        assert security.check_reset(uow, token, NOW).id == user_id


def test_a_reset_ends_every_session(store: Store) -> None:
    user_id = _user(store)
    with store.unit_of_work() as uow:
        public = [sessions.start(uow, user_id, NOW, user_agent="Firefox/1 (Windows)") for _ in range(2)]
        uow.commit()
    token = _issue(store, user_id, security.PASSWORD_RESET)
    with store.unit_of_work() as uow:
        security.reset_password(uow, token, NEW_PASSWORD, NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [sessions.find(uow, user_id, pid, NOW) for pid in public] == [None, None]
        assert sessions.open_sessions(uow, user_id) == []


def test_verification_email_carries_a_link_that_proves_the_address(store: Store) -> None:
    user_id = _user(store)
    mailer = RecordingMailer()
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        security.send_verification(uow, mailer, user, "https://nudge.example/", NOW)
        uow.commit()
    (message,) = mailer.sent
    assert message.to == ["ada@example.com"]
    token = message.text.split("https://nudge.example/account/verify/")[1].split()[0]
    with store.unit_of_work() as uow:
        assert security.verify_email(uow, token, NOW + timedelta(days=2)).email_verified_at == NOW + timedelta(days=2)
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(security.LinkError, match="already used"):
        security.verify_email(uow, token, NOW + timedelta(days=2))


def test_a_check_sent_to_an_old_address_does_not_prove_the_new_one(store: Store) -> None:
    user_id = _user(store)
    token = _issue(store, user_id, security.VERIFY_EMAIL)
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        user.email = "new@example.com"
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(security.LinkError, match="no longer uses"):
        security.verify_email(uow, token, NOW)


def test_sessions_are_found_until_ended_and_seen_at_most_once_a_minute(store: Store) -> None:
    user_id = _user(store)
    other_id = _user(store, "bob@example.com")
    with store.unit_of_work() as uow:
        mine = sessions.start(uow, user_id, NOW, user_agent="x" * 1000, ip_address="192.0.2.1")
        theirs = sessions.start(uow, user_id, NOW, user_agent="Mozilla/5.0 (iPhone) Safari/605")
        uow.commit()
    with store.unit_of_work() as uow:
        assert sessions.find(uow, other_id, mine, NOW) is None  # another user's cookie with this id
        row = sessions.find(uow, user_id, mine, NOW + timedelta(seconds=59))
        assert row is not None
        assert row.last_seen_at == NOW
        assert len(row.user_agent) == sessions.USER_AGENT_MAX
        row = sessions.find(uow, user_id, mine, NOW + timedelta(minutes=1))
        assert row is not None
        assert row.last_seen_at == NOW + timedelta(minutes=1)
        uow.commit()
    with store.unit_of_work() as uow:
        views = sessions.open_sessions(uow, user_id)
        assert len(views) == 2
        theirs_id = sessions.session_id_of(uow, theirs)
        assert theirs_id is not None
        assert not sessions.end(uow, other_id, theirs_id, NOW)  # not theirs to end
        assert sessions.end(uow, user_id, theirs_id, NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        assert sessions.find(uow, user_id, theirs, NOW) is None
        assert sessions.find(uow, user_id, mine, NOW) is not None
        end_sessions(uow, user_id, NOW)  # the signature the teams helper calls: ends all of them
        uow.commit()
    with store.unit_of_work() as uow:
        assert sessions.find(uow, user_id, mine, NOW) is None


def test_devices_are_named_in_words() -> None:
    chrome = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    )
    assert sessions.describe_device(chrome) == "Chrome on Windows"
    assert sessions.describe_device("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17 Safari/605.1") == (
        "Safari on iPhone"
    )
    assert sessions.describe_device("") == "Unknown device"


@pytest.fixture
def vault() -> Vault:
    return Vault.from_keys({"k1": generate_key()}, "k1")


def _enrol(store: Store, vault: Vault, user_id: int) -> tuple[str, list[str]]:
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        enrolment = two_factor.begin(uow, vault, user)
        assert enrolment.secret not in user.totp_secret_sealed  # sealed by the vault
        assert enrolment.uri.startswith("otpauth://totp/Nudge:ada%40example.com?secret=")
        with pytest.raises(two_factor.TwoFactorError, match="not right"):
            two_factor.confirm(
                uow, vault, user, "000000" if pyotp.TOTP(enrolment.secret).at(NOW) != "000000" else "1", NOW
            )
        codes = two_factor.confirm(uow, vault, user, pyotp.TOTP(enrolment.secret).at(NOW), NOW)
        uow.commit()
    return enrolment.secret, codes


def test_two_factor_codes_work_once_within_the_drift_window(store: Store, vault: Vault) -> None:
    user_id = _user(store)
    secret, codes = _enrol(store, vault, user_id)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    totp = pyotp.TOTP(secret)
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        assert two_factor.is_enabled(user)
        assert not two_factor.check(uow, vault, user, totp.at(NOW), NOW)  # the enrolment code was used
        later = NOW + timedelta(seconds=60)
        assert not two_factor.check(uow, vault, user, totp.at(later + timedelta(seconds=90)), later)  # too far ahead
        assert two_factor.check(uow, vault, user, totp.at(later - timedelta(seconds=30)), later)  # one step late
        assert two_factor.check(uow, vault, user, " " + totp.at(later)[:3] + " " + totp.at(later)[3:], later)
        assert not two_factor.check(uow, vault, user, totp.at(later), later)  # replayed
        assert not two_factor.check(uow, vault, user, "", later)
        assert not two_factor.check(uow, vault, user, "x" * 10_000, later)


def test_recovery_codes_are_stored_hashed_and_each_works_once(store: Store, vault: Vault) -> None:
    user_id = _user(store)
    _, codes = _enrol(store, vault, user_id)
    with store.unit_of_work() as uow:
        stored = {row.code_hash for row in uow.session.query(RecoveryCode).all()}
        assert not stored & set(codes)
        user = uow.users.get(user_id)
        assert user is not None
        assert two_factor.check(uow, vault, user, codes[0].upper(), NOW)  # case and dash do not matter
        assert not two_factor.check(uow, vault, user, codes[0], NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        assert two_factor.recovery_codes_left(uow, user_id) == 9


def test_disabling_needs_a_code_or_the_password(store: Store, vault: Vault) -> None:
    user_id = _user(store)
    _, _codes = _enrol(store, vault, user_id)
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        with pytest.raises(two_factor.TwoFactorError, match="password"):
            two_factor.disable(uow, vault, user, code="123", password="wrong password here", now=NOW)
        two_factor.disable(uow, vault, user, password=PASSWORD, now=NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        assert user is not None
        assert not two_factor.is_enabled(user)
        assert user.totp_secret_sealed == ""
        assert two_factor.recovery_codes_left(uow, user_id) == 0


def test_the_organization_rule_applies_to_its_owners_only(store: Store) -> None:
    owner = _user(store)
    with store.unit_of_work() as uow:
        viewer = create_user(uow, "viewer@example.com", PASSWORD)
        org_id = uow.organizations.by_name("Alpha Books").id  # type: ignore[union-attr]
        uow.memberships.add(viewer.id, org_id, Role.VIEWER)
        assert not two_factor.required_for(uow, owner)
        two_factor.require_for_owners(uow, org_id, True)
        uow.commit()
        viewer_id = viewer.id
    with store.unit_of_work() as uow:
        assert two_factor.owners_must_use_it(uow, org_id)
        assert two_factor.required_for(uow, owner)
        assert not two_factor.required_for(uow, viewer_id)
        assert isinstance(uow.users.get(owner), User)
