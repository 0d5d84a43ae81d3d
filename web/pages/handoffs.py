"""Hand-off packs to download (docs/handoff.md): the letter, the evidence ZIP and the agency placement file.

Route (client-scoped: web.access checks the organization, the client and a client-limited member's clients):
- `download` GET /orgs/<org_id>/clients/<connection_id>/handoff/<pack_id>/<part> — part is letter.pdf,
  evidence.zip or placement.csv; another organization's or client's pack, or any other part, is a 404.
`pack_rows` gives the invoice page and the inbox the packs with their download links.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, abort, g, url_for
from flask.typing import ResponseReturnValue

from connector.errors import UnknownRecord
from connector.receivables.handoffs import PackView, pack_file
from web.extensions import services
from web.pages.ui import day, money

bp = Blueprint("handoffs_page", __name__)

BASE = "/orgs/<int:org_id>/clients/<int:connection_id>/handoff/<int:pack_id>"


@bp.get(f"{BASE}/<part>")
def download(org_id: int, connection_id: int, pack_id: int, part: str) -> ResponseReturnValue:
    """One file of a hand-off pack, as a download (every member who sees the client)."""
    try:
        data, mimetype, name = pack_file(
            services().store,
            org_id,
            connection_id,
            pack_id,
            part,
            connection_ids=g.member_scope.visible_connection_ids(),
        )
    except UnknownRecord:
        abort(404)
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def pack_rows(packs: Sequence[PackView], org_id: int, clients: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """The packs as the `handoffs/_packs.html` macro shows them, with their download links."""
    rows = []
    for pack in packs:
        link: dict[str, Any] = {"org_id": org_id, "connection_id": pack.connection_id, "pack_id": pack.id}
        rows.append(
            {
                "letter": pack.letter,
                "customer_name": pack.customer_name,
                "letter_date": day(pack.letter_date),
                "invoices": ", ".join(pack.invoice_numbers),
                "client": (clients or {}).get(pack.connection_id, ""),
                "totals": "; ".join(money(amount, currency) for currency, amount in pack.totals),
                "missing_pdfs": ", ".join(pack.missing_pdfs),
                "letter_url": url_for("handoffs_page.download", part="letter.pdf", **link),
                "evidence_url": url_for("handoffs_page.download", part="evidence.zip", **link),
                "placement_url": url_for("handoffs_page.download", part="placement.csv", **link),
            }
        )
    return rows
