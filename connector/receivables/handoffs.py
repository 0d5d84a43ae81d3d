"""Hand-off packs as people see them: those of an invoice, the organization's recent ones, and their files.

Every read checks that the client is the organization's and visible to the member (`visible_connection`), and
that the pack belongs to that client: an id of another organization's pack reads as one that never existed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from connector.errors import UnknownRecord
from connector.handoff.files import LETTER_TITLES
from connector.receivables.common import row_id, visible_connection, visible_connections
from connector.storage import Store
from connector.storage.tables import HandoffPack, Invoice

# part of the URL -> (column, mimetype, file name prefix)
PARTS = {
    "letter.pdf": ("letter_pdf", "application/pdf", "letter"),
    "evidence.zip": ("evidence_zip", "application/zip", "evidence"),
    "placement.csv": ("placement_csv", "text/csv; charset=utf-8", "placement"),
}


@dataclass(frozen=True)
class PackView:
    """One hand-off pack: whom and what it covers, its letter, totals per currency and when it was made."""

    id: int
    connection_id: int
    customer_name: str
    invoice_numbers: tuple[str, ...]
    letter: str  # "Letter before claim" | "Final demand"
    letter_date: date
    totals: tuple[tuple[str, str], ...]  # (currency, amount claimed)
    missing_pdfs: tuple[str, ...]
    created_at: datetime


def _view(row: HandoffPack) -> PackView:
    return PackView(
        id=row.id,
        connection_id=row.connection_id,
        customer_name=row.customer_name,
        invoice_numbers=tuple(str(n) for n in row.invoice_numbers or []),
        letter=LETTER_TITLES.get(row.kind, row.kind),
        letter_date=row.letter_date,
        totals=tuple((currency, str(values.get("claimed", ""))) for currency, values in sorted(row.totals.items())),
        missing_pdfs=tuple(str(n) for n in row.missing_pdfs or []),
        created_at=row.created_at,
    )


_LISTED = (
    HandoffPack.id,
    HandoffPack.connection_id,
    HandoffPack.customer_name,
    HandoffPack.invoice_numbers,
    HandoffPack.invoice_external_ids,
    HandoffPack.kind,
    HandoffPack.letter_date,
    HandoffPack.totals,
    HandoffPack.missing_pdfs,
    HandoffPack.created_at,
)


def packs_of_invoice(
    store: Store,
    org_id: int,
    connection_id: int,
    invoice_id: int,
    *,
    connection_ids: Collection[int] | None = None,
) -> list[PackView]:
    """The packs covering invoice `invoice_id` (row id), newest first; UnknownRecord outside what the member sees."""
    row_id(invoice_id, "invoice_id", "invoice")
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        invoice = uow.session.scalar(
            select(Invoice).where(Invoice.id == invoice_id, Invoice.connection_id == connection_id)
        )
        if invoice is None:
            raise UnknownRecord(f"no invoice with id {invoice_id} for client {connection_id}", "invoice_id")
        rows = uow.session.execute(
            select(*_LISTED)
            .where(
                HandoffPack.connection_id == connection_id,
                HandoffPack.customer_external_id == invoice.customer_external_id,
            )
            .order_by(HandoffPack.id.desc())
        ).all()
        return [_view(row) for row in rows if invoice.external_id in (row.invoice_external_ids or [])]  # type: ignore[arg-type]


def recent_packs(
    store: Store, org_id: int, *, connection_ids: Collection[int] | None = None, limit: int = 20
) -> list[PackView]:
    """The organization's newest packs (of the clients the member sees), newest first."""
    with store.unit_of_work() as uow:
        visible = [c.id for c in visible_connections(uow, org_id, connection_ids)]
        if not visible:
            return []
        rows = uow.session.execute(
            select(*_LISTED)
            .where(HandoffPack.organization_id == org_id, HandoffPack.connection_id.in_(visible))
            .order_by(HandoffPack.id.desc())
            .limit(limit)
        ).all()
        return [_view(row) for row in rows]  # type: ignore[arg-type]


def pack_file(
    store: Store,
    org_id: int,
    connection_id: int,
    pack_id: int,
    part: str,
    *,
    connection_ids: Collection[int] | None = None,
) -> tuple[bytes, str, str]:
    """(bytes, mimetype, download name) of one file of a pack; UnknownRecord for an unknown part or pack."""
    row_id(pack_id, "pack_id", "hand-off pack")
    wanted = PARTS.get(part)
    if wanted is None:
        raise UnknownRecord(f"a hand-off pack has no file {part[:40]!r}", "part")
    column, mimetype, prefix = wanted
    with store.unit_of_work() as uow:
        visible_connection(uow, org_id, connection_id, connection_ids)
        found = uow.session.execute(
            select(getattr(HandoffPack, column), HandoffPack.letter_date).where(
                HandoffPack.id == pack_id,
                HandoffPack.connection_id == connection_id,
                HandoffPack.organization_id == org_id,
            )
        ).first()
    if found is None:
        raise UnknownRecord(f"no hand-off pack with id {pack_id} for client {connection_id}", "pack_id")
    data, letter_date = found
    extension = part.rsplit(".", 1)[1]
    return bytes(data), mimetype, f"handoff-{pack_id}-{prefix}-{letter_date.isoformat()}.{extension}"
