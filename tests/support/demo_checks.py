"""What a demo run leaves behind, checked the same way for `nudge demo` (tests/integration/test_demo.py) and the
page tests' demo world (tests/web/pages/test_demo_world.py)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any


def check_browse_block(text: str, out: Path, summary: dict[str, Any]) -> None:
    """After the summary: the command, the address, the sign-in and what waits in the inbox (the store's counts)."""
    block = text[text.index("Browse it") :]
    assert f"  NUDGE_CONFIG={out / 'nudge.yaml'} nudge serve\n" in block
    assert "open http://127.0.0.1:5000 and sign in as demo@example.com with the password nudge-demo-password" in block
    tasks = summary["open_tasks"]
    waiting = (
        f"waiting in the inbox: {summary['actions_awaiting_approval']} actions to approve, {tasks['call']} calls to "
        f"make, {tasks['handoff']} hand-overs to decide, 1 quarantined invoice"
    )
    assert waiting in block, block


def check_inbox_in_the_store(database: Path, *, approval_from: date) -> None:
    """What the web app's inbox reads is in the demo's database, put there by the product's own paths."""
    db = sqlite3.connect(database)
    try:
        connections = dict(db.execute("SELECT name, id FROM connections"))
        first, last = connections["Hudson Valley Design Co."], connections["Thames Joinery Ltd"]
        # Approval mode came through the client settings (audited, an activity by the demo's user)...
        settings = db.execute(
            "SELECT detail, actor, at FROM activities WHERE kind = 'client_settings.updated' AND connection_id = ?",
            (first,),
        ).fetchall()
        [(after, actor, at)] = [
            (json.loads(detail)["after"], actor, at)
            for detail, actor, at in settings
            if json.loads(detail)["changed"] == ["approval"]
        ]
        assert after["approval"] == "all"
        assert (actor, at[:10]) == ("demo@example.com", approval_from.isoformat())
        # ... and what fell due since waits for a person: reminders among it, none of the other company's.
        waiting = db.execute(
            "SELECT connection_id, kind, created_at FROM actions WHERE state = 'awaiting_approval'"
        ).fetchall()
        assert waiting
        assert {connection for connection, _, _ in waiting} == {first}
        assert "remind" in {kind for _, kind, _ in waiting}
        assert min(created[:10] for _, _, created in waiting) >= approval_from.isoformat()
        # The older debt is handed over: an open hand-over task on one of its invoices, from a done escalation.
        handovers = db.execute(
            "SELECT t.invoice_external_ids, a.kind, a.state FROM tasks t JOIN actions a ON a.key = t.action_key "
            "WHERE t.kind = 'handoff' AND t.state = 'open' AND t.connection_id = ? AND t.customer_name = ?",
            (last, "Old Mill Interiors"),
        ).fetchall()
        assert {(kind, state) for _, kind, state in handovers} == {("escalate", "done")}
        invoices = sorted({invoice for ids, _, _ in handovers for invoice in json.loads(ids)})
        numbers = db.execute(
            f"SELECT number FROM invoices WHERE connection_id = ? AND external_id IN ({','.join('?' * len(invoices))})",
            (last, *invoices),
        ).fetchall()
        assert sorted(numbers) == [("TJ-0931",), ("TJ-0947",)]  # the older debt, handed over to a person
        [(cadence,)] = db.execute(
            "SELECT l.name FROM customers c JOIN library_items l ON l.id = c.cadence_id WHERE c.name = ?",
            ("Old Mill Interiors",),
        ).fetchall()
        assert cadence == "long_overdue"
        # The invoice in litas is quarantined, naming the field and why, and never stored.
        quarantined = db.execute(
            "SELECT DISTINCT connection_id, subject, detail FROM activities WHERE kind = 'sync.quarantined'"
        ).fetchall()
        assert [(c, json.loads(d)) for c, _, d in quarantined] == [
            (first, {"field": "CurrencyRef", "reason": "unknown currency 'LTL'"})
        ]
        stored = db.execute("SELECT COUNT(*) FROM invoices WHERE external_id = ?", (quarantined[0][1],)).fetchone()
        assert stored == (0,)
    finally:
        db.close()
