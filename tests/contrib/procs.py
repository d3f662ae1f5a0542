"""Running example programs as real processes: their output lines, their exit, their cleanup."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process whose merged stdout/stderr is read line by line in the background."""

    def __init__(
        self, argv: Sequence[str], *, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
        stdin: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=cwd, start_new_session=True,
        )
        self.lines: List[str] = []
        self._queue: queue.Queue[Optional[str]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The first line (from now on) containing ``text``; fails with the output seen so far."""
        try:
            while True:
                line = self._queue.get(timeout=timeout)
                if line is None:
                    raise AssertionError(f"{self.argv} exited ({self.popen.wait()}) before printing {text!r}:\n"
                                         + self.output())
                if text in line:
                    return line
        except queue.Empty:
            raise AssertionError(f"{self.argv} printed no {text!r} within {timeout}s:\n" + self.output()) from None

    def send_line(self, text: str) -> None:
        """Write one line to the child's stdin (started with ``stdin=True``)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode() + b"\n")
        self.popen.stdin.flush()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(10)
        return code

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def close(self) -> None:
        """Kill the whole process group (gunicorn workers and registrar included, even orphaned ones)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait(30)
        self._reader.join(10)
        if self.popen.stdin is not None:
            self.popen.stdin.close()


def python(*args: str, **kw: Any) -> Proc:
    return Proc([sys.executable, *args], **kw)


def instances(etcd_client: Any, service: str) -> List[Dict[str, Any]]:
    """The records of ``service`` in etcd, read raw (Go fyer-rpc's key layout)."""
    return [json.loads(value) for value, _ in etcd_client.get_prefix(f"/fyerrpc/services/{service}/")]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def ask_concurrently(ask: Callable[[], None], times: int = 4) -> None:
    """Run ``ask`` in ``times`` threads at once: with gunicorn's sync workers, a busy worker leaves
    some requests to the others (sequential requests may all land on one worker)."""
    askers = [threading.Thread(target=ask) for _ in range(times)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(30)


def some_thread_inside(function: str) -> bool:
    """True while some thread of this process runs ``function`` (anywhere in its stack)."""
    for frame in sys._current_frames().values():
        walk: Optional[FrameType] = frame
        while walk is not None:
            if walk.f_code.co_name == function:
                return True
            walk = walk.f_back
    return False
