"""The benchmarks still run end to end (tiny sizes, their own etcd), so they cannot rot.

Nothing here asserts a speed: only that every benchmark ran, reported its rows
beside a baseline, and wrote BENCHMARKS.md, its plots and the raw results.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import List

import pytest

from bench.__main__ import BENCHMARKS, main, parse_args
from bench.calls import api_available
from bench.context import etcd_backend_available
from bench.grpc_calls import grpc_available
from bench.report import Row, Section, fmt, text_table
from bench.stats import percentile, summary
from fyerreg.testing import EtcdBinaryNotFoundError, find_etcd_binary
from tests.helpers import no_fyerreg_thread_left


def etcd_children() -> List[str]:
    """Command lines of this process's children that run an etcd binary (an etcd or a grpc-proxy)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and "etcd" in os.path.basename(cmdline.split(" ", 1)[0]):
            found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        find_etcd_binary()
    except EtcdBinaryNotFoundError as exc:
        pytest.skip(f"no etcd binary: {exc}")
    out = tmp_path_factory.mktemp("bench")
    before = etcd_children()  # a session's etcd fixture may run beside it
    with no_fyerreg_thread_left("the smoke run"):
        assert main(["--profile", "smoke", "--out", str(out), "--quiet"]) == 0
    # Every subscriber process, the grpc-proxy and the run's etcd are gone.
    assert multiprocessing.active_children() == []
    assert [cmd for cmd in etcd_children() if cmd not in before] == []
    return out


def test_every_benchmark_reports_rows_beside_a_baseline(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "bench" / "plots" / "results.json").read_text())
    sections = {s["key"]: s for s in results["sections"]}
    assert list(sections) == [key for key, _ in BENCHMARKS]
    for key, section in sections.items():
        assert section["error"] is None, (key, section["error"])
    always = ["propagation", "churn", "subscriber", "select", "footprint"]
    for key in always:
        assert sections[key]["rows"], key
        assert any(row["baseline"] is not None for row in sections[key]["rows"]), key
    if etcd_backend_available():
        for key in [*always, "failure", *(["calls", "httpx"] if api_available() else []),
                    *(["grpc"] if grpc_available() else [])]:
            rows = sections[key]["rows"]
            assert any(row["value"] is not None and row["baseline"] is not None for row in rows), key
        for key in ["idle", "subscribe", "crowded", "fanout"]:
            rows = sections[key]["rows"]
            assert rows and all(row["value"] is not None and row["baseline"] is not None for row in rows), key
        idle = sections["idle"]["data"]
        for kind in ("subscriptions", "registrations"):
            assert {"fyerreg", "raw"} <= set(idle[kind]), kind
        fanout = sections["fanout"]["data"]
        assert len(fanout["last"]["direct"]) == len(fanout["last"]["proxy"]) > 0
        assert all(last >= first for last, first in zip(fanout["last"]["proxy"], fanout["first"]["proxy"]))
        kills = sections["failure"]["data"]["sigkill_removal"]["2"]
        assert kills and all(t > 0 for t in kills)
        delivered = sections["propagation"]["data"]["delivered"]
        assert all(len(delivered[k]) == len(sections["propagation"]["data"]["latency"][k]) for k in delivered)


def test_report_has_machine_table_and_the_plots_it_references(smoke_run: Path) -> None:
    report = (smoke_run / "BENCHMARKS.md").read_text()
    assert "## Machine" in report and "etcd Version" in report
    assert "| benchmark | metric | fyerreg | baseline | ratio | goal |" in report
    plots = [line.split("](", 1)[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert plots
    for plot in plots:
        assert (smoke_run / plot).stat().st_size > 1000, plot
    assert {"churn.png", "select.png", "subscriber.png"} <= {Path(p).name for p in plots}


def test_table_shows_ratio_and_missed_goals() -> None:
    section = Section("x", "Example", "")
    section.add(Row("fast", 1.0, 2.0, "ms", "<= 1.3x", True, "floor"),
                Row("slow", 3.0, 2.0, "ms", "<= 1.3x", False, "floor"),
                Row("alone", None, 2.0, "ms"))
    table = text_table([section])
    assert "0.5x" in table and "1.5x" in table and "MISSED" in table
    assert [r.metric for r in section.missed] == ["slow"]
    assert fmt(None) == "-" and fmt(1234.5, "ops/s") == "1,234 ops/s" and fmt(0.1234, "ms") == "0.123 ms"


def test_percentiles_interpolate() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    s = summary([float(v) for v in range(1, 101)])
    assert s["p50"] == 50.5 and s["max"] == 100 and round(s["p99"], 2) == 99.01


def test_fanout_processes_option_sets_the_profile_and_rejects_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--quick", "--fanout-processes", "7"]).fanout_processes == 7
    assert parse_args([]).fanout_processes is None
    with pytest.raises(SystemExit):
        parse_args(["--fanout-processes", "0"])
    assert "--fanout-processes must be at least 1" in capsys.readouterr().err
