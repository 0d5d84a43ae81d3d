"""The pages people work in: one blueprint per screen, server-rendered with Jinja, partial updates with htmx.

Each module owns one screen and its actions (`overview`, `clients`, `invoices`, `customers`, `cadences`,
`email_templates`, `inbox`, `handoffs`, `settings`, `team`), registered as blueprint `<module>_page` (the
JSON API already uses the bare resource names); its templates live in `web/templates/<module>/` and its own
styles, if any, in `web/static/pages/<module>.css` (linked from the page's `{% block head %}`). Views are thin:
they call the same services as the JSON API (`connector.receivables`, `connector.library`, ...) and render what
those return. `ui` holds what every page shares: the navigation, Jinja filters for money, dates
and instants, and flash helpers.
"""

from __future__ import annotations

from flask import Flask

from web.pages import (
    cadences,
    clients,
    customers,
    email_templates,
    handoffs,
    inbox,
    invoices,
    overview,
    settings,
    team,
    ui,
)

BLUEPRINTS = (
    overview.bp,
    clients.bp,
    invoices.bp,
    customers.bp,
    cadences.bp,
    email_templates.bp,
    inbox.bp,
    handoffs.bp,
    settings.bp,
    team.bp,
)


def register(app: Flask) -> None:
    """Register every page blueprint and the shared Jinja helpers on `app`."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    ui.init_app(app)
