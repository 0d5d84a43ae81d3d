"""The reliability table gathers a parametrized family into one row and names ids without a test."""

from __future__ import annotations

import pytest

from tests.support.catalogue import CATALOGUE_IDS, build_table, catalogue_id


def _report(nodeid: str, when: str, outcome: str, duration: float) -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("f", 1, "t"), {}, outcome, None, when, duration=duration)  # type: ignore[arg-type]


def test_catalogue_ids_cover_rs01_to_rs39() -> None:
    assert CATALOGUE_IDS[0] == "RS-01"
    assert CATALOGUE_IDS[-1] == "RS-39"
    assert len(CATALOGUE_IDS) == 39


def test_only_reliability_tests_named_after_an_id_count() -> None:
    assert catalogue_id("tests/reliability/test_rs34_headers.py::test_rs34_bcc[encoded]") == "RS-34"
    assert catalogue_id("tests/reliability/test_rs34_headers.py::test_helper") is None
    assert catalogue_id("tests/unit/test_x.py::test_rs34_lookalike") is None


def test_a_family_passes_only_when_every_member_passed_and_its_seconds_add_up() -> None:
    node = "tests/reliability/test_rs05_smtp.py::test_rs05_timeout"
    rows = build_table(
        [
            _report(f"{node}[a]", "setup", "passed", 0.5),
            _report(f"{node}[a]", "call", "passed", 1.0),
            _report(f"{node}[b]", "call", "failed", 2.0),
            _report("tests/reliability/test_rs06_x.py::test_rs06_once", "call", "passed", 0.25),
        ]
    )
    assert rows["RS-05"].outcome == "failed"
    assert rows["RS-05"].seconds == pytest.approx(3.5)
    assert rows["RS-06"].outcome == "passed"
    assert "RS-07" not in rows
