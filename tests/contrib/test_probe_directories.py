"""The probes' socket directory of a gunicorn master: gone with it, even when it was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from fyerreg.contrib._probe_relay import ProbeDirectory, remove_abandoned
from tests.helpers import wait_until

# Makes a probe directory and prints its path; with "fork", forks a child that keeps it (a
# worker outliving its master) and prints the child's pid; then waits to be killed.
HOLDER = """
import os, sys, time
from fyerreg.contrib._probe_relay import ProbeDirectory
held = ProbeDirectory()
print(held.path, flush=True)
if "fork" in sys.argv and os.fork() == 0:
    os.setsid()
    print(os.getpid(), flush=True)
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def _holder(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})


@pytest.fixture()
def holders() -> Iterator[List[subprocess.Popen[str]]]:
    started: List[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_a_killed_holders_directory_is_removed_and_a_live_ones_kept(tmp_path: Path,
                                                                   holders: List[subprocess.Popen[str]]) -> None:
    killed, alive = _holder(tmp_path), _holder(tmp_path)
    holders += [killed, alive]
    killed_dir, alive_dir = _read_line(killed), _read_line(alive)
    assert os.path.isdir(killed_dir) and os.path.isdir(alive_dir)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)

    assert remove_abandoned(str(tmp_path)) == 1
    assert not os.path.exists(killed_dir)
    assert os.path.isdir(alive_dir)


def test_a_directory_stays_while_a_forked_child_of_its_killed_holder_lives(
        tmp_path: Path, holders: List[subprocess.Popen[str]]) -> None:
    master = _holder(tmp_path, "fork")
    holders.append(master)
    path = _read_line(master)
    worker_pid = int(_read_line(master))
    master.send_signal(signal.SIGKILL)
    master.wait(10)
    try:
        assert remove_abandoned(str(tmp_path)) == 0
        assert os.path.isdir(path)
    finally:
        os.kill(worker_pid, signal.SIGKILL)
    wait_until(lambda: remove_abandoned(str(tmp_path)) == 1, timeout=10.0)
    assert not os.path.exists(path)


def test_making_a_directory_removes_the_abandoned_ones(tmp_path: Path, holders: List[subprocess.Popen[str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    killed = _holder(tmp_path)
    holders.append(killed)
    left = _read_line(killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again

    made = ProbeDirectory()
    try:
        assert not os.path.exists(left)
        assert os.path.dirname(made.path) == str(tmp_path)
        assert oct(os.stat(made.path).st_mode & 0o777) == oct(0o700)
    finally:
        made.remove()
    assert not os.path.exists(made.path)
    made.remove()  # idempotent
