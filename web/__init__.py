"""Nudge's web app: `create_app(settings=None, services=None)` builds a Flask app; nothing runs at import.

Development: `python -m web` (or `nudge serve`) runs Werkzeug's server. Production: run the factory
under gunicorn behind a TLS-terminating proxy — see web/README.md.
"""

from __future__ import annotations

import os

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from connector.bootstrap import Services, build
from connector.config import Settings, load_settings
from connector.errors import ConfigError, ConfigIssue
from connector.vault import redaction
from web import access, api, pages, security, throttle
from web.api.problems import from_http_exception, is_api_request
from web.extensions import SERVICES_KEY, csrf, login_manager

__all__ = ["create_app", "serve"]

MAX_REQUEST_BYTES = 2 * 1024 * 1024


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """The Flask app for `settings` (default: `load_settings()`, i.e. $NUDGE_CONFIG) and `services`
    (default: `connector.bootstrap.build(settings)`). Fails closed without a session secret or vault key.
    """
    if settings is None:
        settings = services.settings if services is not None else load_settings()
    if services is None:
        services = build(settings)
    services.require_ready_to_serve()  # a vault key and a session secret, else VaultError / ConfigError
    if not settings.web.secret_key:  # `settings` may differ from `services.settings`
        raise ConfigError(
            [
                ConfigIssue(
                    settings.source,
                    None,
                    "web.secret_key",
                    "is empty: set NUDGE_SECRET_KEY (any long random text); the web app will not start without it",
                )
            ]
        )
    redaction.register_secret(settings.web.secret_key)
    redaction.register_secret(settings.metrics.token)  # never in a log line, whatever logs the request

    app = Flask(
        __name__,
        instance_path=os.path.abspath(settings.instance_path) if settings.instance_path else None,
    )
    app.config.update(
        SECRET_KEY=settings.web.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        WTF_CSRF_ENABLED=True,
        PREFERRED_URL_SCHEME="https" if settings.web.base_url.startswith("https:") else "http",
    )
    app.extensions[SERVICES_KEY] = services
    security.init_app(app, settings)
    throttle.init_app(
        app,
        settings.web.ratelimit_storage_uri,
        settings.web.login_limit_per_account,
        settings.web.login_limit_per_address,
    )

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    api.init_auth(app)  # an API token, when one is sent, is the request's user before the membership check
    access.init_app(app)  # before CSRF: a non-member gets 404 whatever the method or token
    csrf.init_app(app)

    from web import (
        account,
        auth,
        connections,
        customer_page,
        health,
        home,
        inbound,
        invitations,
        legal,
        metrics,
        signup,
        webhooks,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    account.init_app(app)  # password reset throttle; owners who must use two-factor enrol first
    app.register_blueprint(signup.bp)
    app.register_blueprint(invitations.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(connections.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(inbound.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(legal.bp)
    customer_page.init_app(app, settings.web)  # /c/<token>: the customers' own page (no sign-in, rate-limited)
    pages.register(app)
    metrics.init_app(app, settings.metrics.token, services.store, services.clock.now)
    api.init_api(app, settings)  # /api/v1 (after CSRFProtect: its checks run after the membership check)
    access.check_rules(app)

    _register_error_pages(app)
    return app


ERROR_TEXT = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your role in this organization does not allow this."),
    404: ("Not found", "There is nothing here, or you do not have access to it."),
    405: ("Not allowed", "That method is not allowed here."),
    429: ("Too many attempts", "Too many attempts. Wait a few minutes, then try again."),
    413: ("Too large", "The request was too large."),
}


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> ResponseReturnValue:
        if is_api_request():
            return from_http_exception(error)
        message = "Your form expired or was not sent from this site. Go back, reload the page and try again."
        return render_template("error.html", title="Form expired", message=message), 400

    def http_error(error: HTTPException) -> ResponseReturnValue:
        if is_api_request():  # problem+json under /api/ (web.api.problems)
            return from_http_exception(error)
        code = error.code or 500
        title, message = ERROR_TEXT.get(code, ("Error", "Something went wrong."))
        headers = {"Allow": error.get_response().headers["Allow"]} if code == 405 else {}
        return render_template("error.html", title=title, message=message), code, headers

    for code in ERROR_TEXT:
        app.register_error_handler(code, http_error)


def serve(settings: Settings | None = None, *, host: str | None = None, port: int | None = None) -> None:
    """Run the development server (Werkzeug; not for production) on `web.host`:`web.port`."""
    settings = settings or load_settings()
    app = create_app(settings)
    app.run(host=host or settings.web.host, port=port or settings.web.port, debug=False, use_reloader=False)
