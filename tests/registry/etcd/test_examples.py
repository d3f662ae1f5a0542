"""The etcd demo and the getting-started page's etcd snippet run against a real etcd."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .support import child_env

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=child_env())


def test_etcd_demo_shows_workers_joining_and_leaving():
    result = _run("examples/demo.py", "etcd")
    assert result.returncode == 0, result.stderr
    lives = re.findall(r"live: \[(.*?)\]", result.stdout)
    assert lives[0] == "" and lives[-1] == ""
    assert "worker-1@127.0.0.1:9001, worker-2@127.0.0.1:9002, worker-3@127.0.0.1:9003" in lives
    assert result.stdout.rstrip().endswith("etcd stopped; demo done")


def test_getting_started_etcd_snippet_runs(etcd_endpoints):
    page = (ROOT / "docs" / "getting-started.md").read_text()
    section = page[page.index("\n## The etcd backend\n"):]
    snippet = re.search(r"^```python\n(.*?)^```$", section, re.M | re.S).group(1)
    assert '"127.0.0.1:2379"' in snippet
    result = _run("-c", snippet.replace('"127.0.0.1:2379"', repr(etcd_endpoints[0])))
    assert result.returncode == 0, result.stderr
    assert "RegistrationState(registered=True" in result.stdout
    assert "['10.0.0.5:8080']" in result.stdout
