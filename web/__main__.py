"""`python -m web [--host H] [--port N]`: the development server (config from $NUDGE_CONFIG)."""

from __future__ import annotations

import sys

import click

from connector.errors import NudgeError
from web.commands import serve


def main() -> None:
    try:
        serve.main(prog_name="python -m web", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NudgeError as exc:
        click.echo(f"error: {exc.user_message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
