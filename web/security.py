"""Security headers on every response, the session cookie's flags, and HTTPS only in production.

Production mode is a public `web.base_url` on https: a plain-HTTP request is then redirected (308) to the
same URL on https, and every https answer carries HSTS. Behind a TLS proxy the app sees https through
gunicorn's `--forwarded-allow-ips` (web/README.md). Methods no route accepts (TRACE included) get 405.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, redirect, request
from flask.typing import ResponseReturnValue

from connector.config import Settings

# data: images: Pico.css draws its form controls' icons (a select's chevron, a checkbox's tick, a date field's
# calendar) and Swagger UI its icons as data: URLs. An image cannot run script; scripts and styles stay 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), interest-cohort=(), browsing-topics=()"
)
NO_STORE = "no-cache, no-store"
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Nudge uses no browser feature behind a permission: deny them all to the page and anything in it.
    "Permissions-Policy": PERMISSIONS_POLICY,
}
HSTS = "max-age=31536000; includeSubDomains"
SESSION_COOKIE_NAME = "nudge_session"


def cookie_config(settings: Settings) -> dict[str, object]:
    """Flask config for the session (and Flask-Login remember) cookies."""
    secure = bool(settings.web.session_cookie_secure)
    return {
        "SESSION_COOKIE_NAME": SESSION_COOKIE_NAME,
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    }


def _add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        # Pages show ledger data: never keep them in shared or browser caches.
        response.headers.setdefault("Cache-Control", NO_STORE)
    return response


def _https_only() -> ResponseReturnValue | None:
    """Before-request hook in production: plain HTTP goes to the same URL on https (308 keeps the method)."""
    if request.is_secure:
        return None
    return redirect(request.url.replace("http://", "https://", 1), 308)


def init_app(app: Flask, settings: Settings) -> None:
    """Set the cookie flags and add the headers to every response (views may override deliberately)."""
    app.config.update(cookie_config(settings))
    app.after_request(_add_headers)
    if settings.web.base_url.startswith("https://"):
        app.before_request(_https_only)
