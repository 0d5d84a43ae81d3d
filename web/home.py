"""The signed-in home: which organization to show. An organization's own page is its overview.

`home.organization` stays the name other code builds the organization's URL with (`/orgs/<org_id>/`); the
request itself is answered by the overview screen (`overview_page.index`, web/pages/overview.py), so the rule
here only builds URLs and never matches.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required  # type: ignore[import-untyped, unused-ignore]

from web.extensions import services

bp = Blueprint("home", __name__)
# Built by url_for("home.organization", org_id=...) everywhere; matched by overview_page.index.
bp.add_url_rule("/orgs/<int:org_id>/", endpoint="organization", build_only=True)


def provider_label(key: str) -> str:
    """The provider's display name from the registry, else its key (e.g. a provider no longer configured)."""
    registry = services().registry
    return registry.spec(key).display_name if key in registry else key


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    """Send the user to their first organization, or explain that they have none."""
    with services().store.unit_of_work() as uow:
        memberships = uow.organizations.for_user(current_user.user_id)
        first = memberships[0][0].id if memberships else None
    if first is None:
        return render_template("home/no_org.html")
    return redirect(url_for("home.organization", org_id=first))
