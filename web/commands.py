"""`nudge serve`, contributed to the CLI through the `nudge.commands` entry point."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default: web.host).")
@click.option("--port", type=int, default=None, help="Port (default: web.port).")
@click.pass_obj
def serve(context: Any, host: str | None, port: int | None) -> None:
    """Run the web app on the development server (production: gunicorn "web:create_app()")."""
    from web import create_app

    services = context.services()
    services.require_ready_to_serve()
    app = create_app(services.settings, services)
    settings = services.settings.web
    app.run(host=host or settings.host, port=port or settings.port, debug=False, use_reloader=False)
