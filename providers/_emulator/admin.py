"""Admin routes every emulator shares, under /__admin: clock, faults, call log, latency, limits.

Module-level views reading the app's `EmulatorCore` from `app.extensions` (`register_admin` puts it
there). Provider emulators add their own seed/payment routes under the same prefix.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from providers._emulator.core import EmulatorCore, Fault

EXTENSION = "emulator_core"
admin = Blueprint("emulator_admin", __name__, url_prefix="/__admin")


def register_admin(app: Flask, core: EmulatorCore) -> None:
    """Serve /__admin/{clock,faults,calls,latency,limits} on `app`, bound to `core`."""
    app.extensions[EXTENSION] = core
    app.register_blueprint(admin)


def _core() -> EmulatorCore:
    core: EmulatorCore = current_app.extensions[EXTENSION]
    return core


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


@admin.errorhandler(ValueError)
def bad_request(exc: ValueError) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 400


@admin.get("/clock")
def clock_get() -> Response:
    return jsonify(_core().clock.describe())


@admin.post("/clock")
def clock_set() -> Response:
    clock = _core().clock
    body = _json_body()
    if "advance_days" in body or "advance_seconds" in body:
        delta = timedelta(days=float(body.get("advance_days", 0)), seconds=float(body.get("advance_seconds", 0)))
        clock.advance(delta)
    elif "now" in body:
        clock.set(datetime.fromisoformat(str(body["now"])), frozen=bool(body.get("frozen", False)))
    else:
        raise ValueError("give 'now' (ISO 8601, aware) or 'advance_days' / 'advance_seconds'")
    return jsonify(clock.describe())


@admin.post("/faults")
def faults_add() -> Response:
    _core().add_fault(Fault.from_dict(_json_body()))
    return jsonify({"ok": True})


@admin.delete("/faults")
def faults_clear() -> Response:
    _core().clear_faults()
    return jsonify({"ok": True})


@admin.get("/calls")
def calls_get() -> Response:
    records = _core().calls(request.args.get("category"), request.args.get("tenant"))
    return jsonify({"count": len(records), "calls": [asdict(r) for r in records]})


@admin.delete("/calls")
def calls_clear() -> Response:
    _core().clear_calls()
    return jsonify({"ok": True})


@admin.post("/latency")
def latency_set() -> Response:
    seconds = float(_json_body().get("seconds", 0))
    if seconds < 0 or seconds > 30:
        raise ValueError("latency seconds must be within 0..30")
    core = _core()
    core.latency_s = seconds
    return jsonify({"seconds": core.latency_s})


@admin.post("/limits")
def limits_set() -> Response:
    core = _core()
    body = _json_body()
    for name in ("per_minute", "concurrent", "per_day", "app_per_minute"):
        if name in body:
            setattr(core.limits, name, int(body[name]))
    core.reset_usage()
    return jsonify(asdict(core.limits))
