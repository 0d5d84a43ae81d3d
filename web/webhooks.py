"""Provider webhooks: `POST /webhooks/<provider>`, generic over the registry.

Signed by the provider, not by a browser: no CSRF token, no sign-in, no session (so no cookie is ever
set on these answers). The raw body (at most 1 MB) and the provider's signature header go to
`connector.sync.intake.receive_webhook`, which verifies, deduplicates and makes the connections
due; nothing here calls the provider, so the answer comes well within the providers' 3-5 s. Every
answer has an empty body: 200 accepted (also Xero's correctly signed "intent to receive", and a signed body
that cannot be read, recorded as a failed delivery: connector.sync.intake), 401 bad
signature, 413 too large, 404 unknown provider.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from connector.sync.intake import MAX_BODY_BYTES, WebhookRejected, receive_webhook
from web.extensions import csrf, services

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)
log = logging.getLogger(__name__)


def _empty(status: int) -> Response:
    return Response(b"", status=status)


@bp.post("/webhooks/<provider>")
def receive(provider: str) -> Response:
    """Accept one signed delivery from `provider` (empty body whatever the outcome)."""
    registry = services().registry
    if provider not in registry:
        return _empty(404)
    spec, settings = registry.spec(provider), registry.settings(provider)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _empty(413)
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _empty(413)
    if len(body) > MAX_BODY_BYTES:
        return _empty(413)
    signature = request.headers.get(spec.webhook_signature_header, "") if spec.webhook_signature_header else ""
    try:
        outcome = receive_webhook(services().store, spec, settings, body, signature, services().clock.now())
    except WebhookRejected as exc:
        log.warning("%s webhook refused (%s): %s", provider, exc.status, exc.user_message)
        return _empty(exc.status)
    log.info(
        "%s webhook: %d event(s), %d duplicate(s), %d connection(s) due",
        provider,
        outcome.events,
        outcome.duplicates,
        outcome.connections_marked,
    )
    return _empty(200)
