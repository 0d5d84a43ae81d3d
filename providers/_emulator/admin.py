"""Admin routes every emulator shares, under /__admin: clock, faults, call log, latency, limits.

Provider emulators add their own seed/payment routes to the same blueprint prefix.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from providers._emulator.core import EmulatorCore, Fault


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


def admin_blueprint(core: EmulatorCore) -> Blueprint:
    """Blueprint for /__admin/{clock,faults,calls,latency,limits} bound to `core`."""
    admin = Blueprint("emulator_admin", __name__, url_prefix="/__admin")

    @admin.errorhandler(ValueError)
    def bad_request(exc: ValueError) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @admin.get("/clock")
    def clock_get() -> Response:
        return jsonify(core.clock.describe())

    @admin.post("/clock")
    def clock_set() -> Response:
        body = _json_body()
        if "advance_days" in body or "advance_seconds" in body:
            delta = timedelta(days=float(body.get("advance_days", 0)), seconds=float(body.get("advance_seconds", 0)))
            core.clock.advance(delta)
        elif "now" in body:
            core.clock.set(datetime.fromisoformat(str(body["now"])), frozen=bool(body.get("frozen", False)))
        else:
            raise ValueError("give 'now' (ISO 8601, aware) or 'advance_days' / 'advance_seconds'")
        return jsonify(core.clock.describe())

    @admin.post("/faults")
    def faults_add() -> Response:
        core.add_fault(Fault.from_dict(_json_body()))
        return jsonify({"ok": True})

    @admin.delete("/faults")
    def faults_clear() -> Response:
        core.clear_faults()
        return jsonify({"ok": True})

    @admin.get("/calls")
    def calls_get() -> Response:
        records = core.calls(request.args.get("category"), request.args.get("tenant"))
        return jsonify({"count": len(records), "calls": [asdict(r) for r in records]})

    @admin.delete("/calls")
    def calls_clear() -> Response:
        core.clear_calls()
        return jsonify({"ok": True})

    @admin.post("/latency")
    def latency_set() -> Response:
        seconds = float(_json_body().get("seconds", 0))
        if seconds < 0 or seconds > 30:
            raise ValueError("latency seconds must be within 0..30")
        core.latency_s = seconds
        return jsonify({"seconds": core.latency_s})

    @admin.post("/limits")
    def limits_set() -> Response:
        body = _json_body()
        for name in ("per_minute", "concurrent", "per_day", "app_per_minute"):
            if name in body:
                setattr(core.limits, name, int(body[name]))
        core.reset_usage()
        return jsonify(asdict(core.limits))

    return admin
