"""Running ``fyerreg`` commands as subprocesses: to completion, or long-running with their lines read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List

from tests.helpers import Proc

TIMEOUT = 30.0


def cli_env(endpoints: List[str], namespace: str, **extra: str) -> Dict[str, str]:
    """The whole environment of a command on ``endpoints`` and ``namespace``: no FYERREG_ variable of ours leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FYERREG_")}
    env.update(FYERREG_ENDPOINTS=",".join(endpoints), FYERREG_NAMESPACE=namespace, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(*args: str, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fyerreg", *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def cli_process(*args: str, env: Dict[str, str]) -> Proc:
    """A long-running ``fyerreg`` command; its stdout lines are waited for, its stderr lines kept in ``errors``."""
    return Proc([sys.executable, "-m", "fyerreg", *args], env=env, inherit_env=False, separate_stderr=True)


def next_json(proc: Proc, timeout: float = TIMEOUT) -> Dict[str, Any]:
    """The next line ``proc`` prints (a ``--json`` command), parsed: one object."""
    line = proc.next_line(timeout)
    value = json.loads(line)
    assert isinstance(value, dict), line
    return value


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fyerreg: ")
    return lines[0]
