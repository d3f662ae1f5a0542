"""The select() benchmark still runs (on tiny sizes), so it cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fyerreg.discovery import balancer_names

BENCH = Path(__file__).resolve().parent.parent / "bench" / "select_bench.py"


def test_select_bench_runs_and_reports_every_balancer(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("select_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sizes", "3,20", "--picks", "50"]) == 0
    out = capsys.readouterr().out
    assert "floor ns" in out
    rows = {tuple(line.split()[:2]) for line in out.splitlines() if len(line.split()) >= 6}
    for name in balancer_names():
        assert (name, "3") in rows and (name, "20") in rows, name
