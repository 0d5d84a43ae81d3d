"""`nudge serve`: the development web server, plugged into the `nudge` command through the
`nudge.commands` entry-point group (`serve = "web.commands:serve"`; connector never imports web)."""

from __future__ import annotations

import click

from connector.config import Settings, load_settings


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: web.host from the config).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: web.port from the config).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the development web server (Werkzeug; one machine, no TLS).

    For production run the app factory under gunicorn behind a TLS proxy:
    gunicorn --workers 4 --bind 127.0.0.1:8000 'web:create_app()'  (see web/README.md).
    """
    from web import serve as run_server

    settings: Settings | None = getattr(ctx.obj, "settings", None)  # the `nudge` group's --config
    run_server(settings or load_settings(), host=host, port=port)
