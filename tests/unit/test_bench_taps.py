"""The bench's reading of a Singer tap: RECORD messages of one stream counted from stdout, one stream selected."""

from __future__ import annotations

from bench.taps import count_records, peer_targets, select_only

# singer-python's own output (written by the taps' venvs: singer.write_schema / write_record / write_state).
TAP_STDOUT = [
    b'{"type": "SCHEMA", "stream": "invoices", "schema": {"type": "object"}, "key_properties": ["Id"]}\n',
    b'{"type": "RECORD", "stream": "invoices", "record": {"Id": "1", "Note": "{\\"type\\": \\"RECORD\\"}"}}\n',
    b'{"type": "RECORD", "stream": "payments", "record": {"Id": "2"}}\n',
    b'{"type": "RECORD", "stream": "invoices", "record": {"Id": "3"}}\n',
    b'{"type": "STATE", "value": {"a": 1}}\n',
]


def test_counts_the_records_of_one_stream_only() -> None:
    assert count_records(TAP_STDOUT, "invoices") == 2
    assert count_records(TAP_STDOUT, "payments") == 1
    assert count_records(TAP_STDOUT, "customers") == 0


def test_select_only_keeps_and_selects_the_one_stream() -> None:
    catalog = {
        "streams": [
            {"tap_stream_id": name, "metadata": [{"breadcrumb": [], "metadata": {"inclusion": "available"}}]}
            for name in ("customers", "invoices", "payments")
        ]
    }
    chosen = select_only(catalog, "invoices")
    assert [entry["tap_stream_id"] for entry in chosen["streams"]] == ["invoices"]
    assert chosen["streams"][0]["metadata"][0]["metadata"] == {"inclusion": "available", "selected": True}


def test_peer_targets_need_no_more_calls_and_five_times_the_speed() -> None:
    met = peer_targets({"calls": 11, "wall_s": 1.0, "tap_calls": 11, "tap_wall_s": 5.0})
    assert [target.met for target in met] == [True, True]
    missed = peer_targets({"calls": 12, "wall_s": 1.1, "tap_calls": 11, "tap_wall_s": 5.0})
    assert [target.met for target in missed] == [False, False]
