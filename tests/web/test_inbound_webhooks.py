"""The inbound email webhooks (issue 17): Postmark's Basic credentials and Mailgun's signature (bad, missing,
stale, replayed) are checked before anything is read; a verified reply is stored once and shows in the inbox's
"Customer replies" group and on the customer page, where a person marks it handled."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.bootstrap import reply_addresses
from connector.config import Settings
from connector.mail.inbound.reply_address import ReplyThread, thread_hash
from connector.storage import Store
from connector.storage.tables import Customer, InboundMessage
from tests.web.conftest import Account, csrf_token
from web import create_app
from web.extensions import SERVICES_KEY

POSTMARK_AUTH = "postmark-hook:pm-secret-Passw0rd"
MAILGUN_KEY = "key-mailgun-signing-test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    mail = replace(
        settings.mail,
        reply_address="replies@nudge.example",
        inbound_postmark_basic_auth=POSTMARK_AUTH,
        inbound_mailgun_signing_key=MAILGUN_KEY,
        inbound_max_bytes=200_000,
    )
    return replace(settings, mail=mail)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    yield app
    store.dispose()


@pytest.fixture
def thread(store: Store, signed_in: Account, settings: Settings) -> tuple[int, int, str]:
    """Client "Books" of the signed-in owner's organization, customer "Cust One", and its reply address."""
    with store.unit_of_work() as uow:
        connection = uow.connections.add(signed_in.org_id, "fake", "t1", "Books")
        customer = Customer(connection_id=connection.id, external_id="c1", name="Cust One", emails=["ap@cust.example"])
        uow.session.add(customer)
        uow.commit()
        ids = (connection.id, customer.id)
    addresses = reply_addresses(settings)
    assert addresses is not None
    thread = ReplyThread(signed_in.org_id, ids[0], ids[1], thread_hash(f"{ids[0]}:customer:c1"))
    return ids[0], ids[1], addresses.address(thread)


def postmark_body(to: str, message_id: str = "<pm-1@cust.example>", **extra: object) -> dict[str, object]:
    return {
        "From": "ap@cust.example",
        "FromName": "Jane Buyer",
        "To": to,
        "OriginalRecipient": to,
        "Subject": "Re: Invoice INV-1 is overdue",
        "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
        "Date": "Mon, 16 Nov 2026 10:00:00 +0000",
        "TextBody": "We pay on Friday.\n\nOn Mon, Books <billing@books.example> wrote:\n> Invoice INV-1 is overdue",
        "HtmlBody": "<p>We pay on Friday.</p>",
        "StrippedTextReply": "We pay on Friday.",
        "Headers": [{"Name": "Message-ID", "Value": message_id}, {"Name": "X-Spam-Status", "Value": "No"}],
        **extra,
    }


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def rows(store: Store) -> list[InboundMessage]:
    with store.unit_of_work() as uow:
        found = list(uow.session.query(InboundMessage).order_by(InboundMessage.id))
        uow.session.expunge_all()
        return found


def test_postmark_refuses_missing_or_wrong_credentials_before_reading_anything(
    client: FlaskClient, store: Store, thread: tuple[int, int, str]
) -> None:
    body = postmark_body(thread[2])
    assert client.post("/inbound/email/postmark", json=body).status_code == 401
    assert client.post("/inbound/email/postmark", json=body, headers=basic("postmark-hook:wrong")).status_code == 401
    assert client.post("/inbound/email/postmark", json=body, headers={"Authorization": "Basic %%%"}).status_code == 401
    assert client.post("/inbound/email/postmark", json=body, headers={"Authorization": "Bearer x"}).status_code == 401
    assert rows(store) == []


def test_a_verified_postmark_reply_is_stored_once_filed_under_its_customer_and_shown_to_people(
    client: FlaskClient, store: Store, thread: tuple[int, int, str], signed_in: Account
) -> None:
    connection_id, customer_id, address = thread
    body = postmark_body(address)
    first = client.post("/inbound/email/postmark", json=body, headers=basic(POSTMARK_AUTH))
    again = client.post("/inbound/email/postmark", json=body, headers=basic(POSTMARK_AUTH))  # Postmark retries
    assert (first.status_code, again.status_code) == (200, 200)
    [row] = rows(store)
    assert (row.kind, row.source, row.route, row.message_id) == ("human", "postmark", "token", "<pm-1@cust.example>")
    assert row.text == "We pay on Friday."
    assert row.connection_id == connection_id
    assert row.paused_until is not None

    page = client.get(f"/orgs/{signed_in.org_id}/inbox")
    assert page.status_code == 200
    assert 'data-testid="group-replies"' in page.text
    assert "We pay on Friday." in page.text
    assert "Cust One replied" in page.text
    customer_page = client.get(f"/orgs/{signed_in.org_id}/clients/{connection_id}/customers/{customer_id}")
    assert customer_page.status_code == 200
    assert 'data-testid="replies"' in customer_page.text
    assert "We pay on Friday." in customer_page.text

    done = client.post(
        f"/orgs/{signed_in.org_id}/inbox/replies/{row.id}/handled",
        data={"csrf_token": csrf_token(page.text), "group": "replies"},
    )
    assert done.status_code == 303
    assert 'data-testid="group-replies"' not in client.get(f"/orgs/{signed_in.org_id}/inbox").text
    unknown = client.post(
        f"/orgs/{signed_in.org_id}/inbox/replies/99999/handled", data={"csrf_token": csrf_token(page.text)}
    )
    assert unknown.status_code == 404


def test_postmark_bodies_that_are_not_its_json_or_too_large_are_refused(
    client: FlaskClient, store: Store, thread: tuple[int, int, str]
) -> None:
    auth = basic(POSTMARK_AUTH)
    assert client.post("/inbound/email/postmark", data=b"{not json", headers=auth).status_code == 400
    assert client.post("/inbound/email/postmark", json=["a", "list"], headers=auth).status_code == 400
    huge = postmark_body(thread[2], TextBody="x" * 300_000)
    assert client.post("/inbound/email/postmark", json=huge, headers=auth).status_code == 413
    # Hostile but well-formed JSON: wrong types everywhere are ignored, the message is kept as unmatched.
    odd = {"From": 5, "To": ["x"], "Headers": [1, {"Name": None}, {"Name": "Bad Name", "Value": "x"}], "TextBody": {}}
    assert client.post("/inbound/email/postmark", json=odd, headers=auth).status_code == 200
    assert [row.kind for row in rows(store)] == ["unmatched"]


def mailgun_form(
    to: str, *, token: str = "tok-1", timestamp: int | None = None, key: str = MAILGUN_KEY
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "recipient": to,
        "sender": "ap@cust.example",
        "from": "Jane Buyer <ap@cust.example>",
        "subject": "Re: Invoice INV-1 is overdue",
        "body-plain": "Paid this morning, ref 4471.\n\n-- \nJane",
        "message-headers": json.dumps(
            [["From", "Jane Buyer <ap@cust.example>"], ["To", to], ["Message-Id", "<mg-1@cust.example>"]]
        ),
        "timestamp": stamp,
        "token": token,
        "signature": signature,
    }


def test_mailgun_refuses_bad_missing_stale_and_replayed_signatures(
    client: FlaskClient, store: Store, thread: tuple[int, int, str]
) -> None:
    to = thread[2]
    wrong_key = mailgun_form(to, key="another-key")
    assert client.post("/inbound/email/mailgun", data=wrong_key).status_code == 401
    missing = {name: value for name, value in mailgun_form(to).items() if name != "signature"}
    assert client.post("/inbound/email/mailgun", data=missing).status_code == 401
    stale = mailgun_form(to, token="tok-stale", timestamp=int(time.time()) - 3600)
    assert client.post("/inbound/email/mailgun", data=stale).status_code == 401
    garbage_time = {**mailgun_form(to), "timestamp": "soon"}
    assert client.post("/inbound/email/mailgun", data=garbage_time).status_code == 401
    assert rows(store) == []

    good = mailgun_form(to, token="tok-once")
    assert client.post("/inbound/email/mailgun", data=good).status_code == 200
    replayed = client.post("/inbound/email/mailgun", data=good)
    assert replayed.status_code == 401
    assert "replayed" in replayed.text
    [row] = rows(store)
    assert (row.kind, row.source, row.text, row.message_id) == (
        "human",
        "mailgun",
        "Paid this morning, ref 4471.",
        "<mg-1@cust.example>",
    )


def test_mailgun_raw_mime_posts_are_read_as_sent(
    client: FlaskClient, store: Store, thread: tuple[int, int, str]
) -> None:
    form = mailgun_form(thread[2], token="tok-mime")
    form["body-mime"] = (
        f"From: ap@cust.example\r\nTo: {thread[2]}\r\nSubject: Automatic reply: Invoice\r\n"
        "Auto-Submitted: auto-replied\r\nMessage-ID: <oof-1@cust.example>\r\n\r\nI am away until Monday.\r\n"
    )
    # Mailgun posts multipart/form-data
    assert client.post("/inbound/email/mailgun", data=form, content_type="multipart/form-data").status_code == 200
    [row] = rows(store)
    assert (row.kind, row.paused_until, row.handled) == ("auto_reply", None, True)


def test_an_endpoint_without_its_credentials_configured_does_not_exist(settings: Settings) -> None:
    bare = replace(
        settings, mail=replace(settings.mail, inbound_postmark_basic_auth="", inbound_mailgun_signing_key="")
    )
    app = create_app(bare)
    client = app.test_client()
    assert client.post("/inbound/email/postmark", json={}, headers=basic(POSTMARK_AUTH)).status_code == 404
    assert client.post("/inbound/email/mailgun", data={}).status_code == 404
