"""Customer page links (issue 17, docs/customer-page.md): `<base_url>/c/<token>`, one customer of one client.

The token is an itsdangerous signature (salt `nudge.customer-page.v1`: a token made for another purpose, such as
an API listing cursor signed with the same secret, never verifies here) over the connection id, Nudge's customer
row id and the last day the link works. No login: whoever holds the link sees that one customer's open invoices of
that client and nothing else, until the day passes. The expiry is checked against `now` given by the caller (the
service's clock), so a demo's simulated days and a test's fixed clock age links the same way as real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "nudge.customer-page.v1"
MAX_TOKEN_LENGTH = 400  # a token this module makes is about 60 characters; anything much longer is not one


@dataclass(frozen=True, slots=True)
class CustomerClaim:
    """What a verified link names: the client (connection) and the customer (row id), and its last day."""

    connection_id: int
    customer_id: int
    valid_until: date


class LinkRefused(Exception):
    """A customer link that does not open the page: `expired` when it was genuine but its time is up."""

    def __init__(self, expired: bool) -> None:
        super().__init__("the link has expired" if expired else "the link is not one Nudge made")
        self.expired = expired


class CustomerLinks:
    """Makes and reads customer page links for an install (`web.base_url`, signed with `web.secret_key`)."""

    def __init__(self, secret: str, base_url: str, valid_days: int) -> None:
        if not secret:
            raise ValueError("customer page links need a signing secret (web.secret_key)")
        if valid_days < 1:
            raise ValueError("customer page links must work at least one day")
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self.base_url = base_url.rstrip("/")
        self.valid_days = valid_days

    def token(self, connection_id: int, customer_id: int, now: datetime) -> str:
        """A token for customer `customer_id` of client `connection_id`, working `valid_days` from `now` (UTC day)."""
        last = now.astimezone(UTC).date() + timedelta(days=self.valid_days)
        # A list, not an object: the token then never starts "eyJ" like the providers' JWTs the secret scans look for.
        signed: str = self._serializer.dumps([connection_id, customer_id, last.isoformat()])
        return signed

    def url(self, connection_id: int, customer_id: int, now: datetime) -> str:
        """The page's full address for the customer (what a reminder prints)."""
        return f"{self.base_url}/c/{self.token(connection_id, customer_id, now)}"

    def read(self, token: str, now: datetime) -> CustomerClaim:
        """The claim of `token`; LinkRefused when it was changed in any way, is not ours, or its last day passed."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise LinkRefused(expired=False)
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise LinkRefused(expired=False) from None
        claim = _claim(payload)
        if claim is None:
            raise LinkRefused(expired=False)
        if now.astimezone(UTC).date() > claim.valid_until:
            raise LinkRefused(expired=True)
        return claim


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _claim(payload: object) -> CustomerClaim | None:
    """The claim in a signed payload of the expected shape (a signed value of another shape names nothing)."""
    if not isinstance(payload, list) or len(payload) != 3:
        return None
    connection_id, customer_id, until = payload
    if not all(_is_id(value) for value in (connection_id, customer_id)):
        return None
    try:
        valid_until = date.fromisoformat(until) if isinstance(until, str) else None
    except ValueError:
        return None
    return None if valid_until is None else CustomerClaim(connection_id, customer_id, valid_until)
