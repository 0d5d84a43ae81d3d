"""RS-37: a malformed config.yaml stops `nudge check-config` and `nudge worker` before anything starts.

Each case is a small, otherwise valid config with one mistake. Both commands run as real processes;
each must exit non-zero with a message naming the file, line, column and key path, and the worker
must not have started: no scheduler ("worker started" never printed) and no database file created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.vault.keyring import generate_key

NUDGE = str(Path(sys.executable).with_name("nudge"))
ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
mode: development
instance_path: {instance}
database:
  url: sqlite:///{instance}/nudge.sqlite3
policies:
  templates: [firm]
  late_fees:
    flat: {{kind: flat, amount: 25}}
"""  # 8 lines: each case's line numbers below count from line 9

CASES = {
    "bad_yaml": ("scheduler:\n  tick_seconds: [1, 2\n", 11, 1, "(top level)", "not valid YAML"),
    "unknown_key": ("scheduler:\n  tick_secs: 5\n", 10, 3, "scheduler.tick_secs", "unknown key 'tick_secs'"),
    "wrong_type": ("scheduler:\n  lease_seconds: ten\n", 10, 3, "scheduler.lease_seconds", "expected a whole number"),
    "negative_day_offset": (
        "cadences:\n  standard:\n    steps: [{id: fee, offset: -3, late_fee: flat}]\n",
        10,
        3,
        "cadences.standard",
        "offset -3",
    ),
    "unknown_timezone": (
        "cadences:\n  standard:\n    time_zone: Mars/Olympus\n    steps: [{id: late, offset: 3, remind: firm}]\n",
        10,
        3,
        "cadences.standard",
        "Mars/Olympus",
    ),
    "duplicate_cadence_id": (
        "cadences:\n  standard:\n    steps: [{id: a, offset: 3, remind: firm}]\n"
        "  standard:\n    steps: [{id: b, offset: 5, remind: firm}]\n",
        12,
        3,
        "cadences.standard",
        "duplicate key 'standard' (first defined at line 10)",
    ),
}


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUDGE_VAULT_KEY=generate_key())
    env.pop("NUDGE_CONFIG", None)
    return subprocess.run(
        [NUDGE, "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(config.parent),
        check=False,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_rs37_malformed_config_exits_non_zero_naming_file_line_column_and_key(tmp_path: Path, case: str) -> None:
    """RS-37: non-zero exit; the message names file, line, column and key path; no partial start."""
    mistake, line, column, key_path, words = CASES[case]
    instance = tmp_path / "instance"
    config = tmp_path / "nudge.yaml"
    config.write_text(HEAD.format(instance=instance) + mistake)

    checked = _run(config, "check-config")
    worker = _run(config, "worker")

    for result in (checked, worker):
        assert result.returncode != 0, result.stdout
        assert f"{config}:{line}:{column}: {key_path}" in result.stderr, result.stderr
        assert words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert "worker started" not in worker.stdout  # no scheduler
    assert not (instance / "nudge.sqlite3").exists()  # no database writes: not even the file
