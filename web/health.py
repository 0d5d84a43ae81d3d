"""GET /healthz: is the process up and does the database answer? (no sign-in; no details leak).

200 {"status": "ok"} when the database answers; 503 {"status": "degraded"} while it does not (a restart,
an outage): the process stays up and recovers by itself once the database is back.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from web.extensions import services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        services().store.ping()
    except Exception as exc:  # StorageError by contract; anything else is just as unhealthy
        # The error text may name the database URL: log only its kind, return nothing of it.
        log.warning("healthz: database unreachable (%s)", type(exc).__name__)
        return jsonify(status="degraded", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
