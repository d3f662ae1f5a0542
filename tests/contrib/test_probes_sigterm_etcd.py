"""SIGTERM to a real gunicorn or uvicorn with probes on, against a real etcd: /readyz answers 503 while the
record still exists, then the record disappears while the server still accepts connections, then the
server stops accepting. The order is read from timestamps that polling threads take."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from fyerreg.testing import raw_client
from tests.helpers import Proc, child_pids, free_port, process_cmdline, wait_until

from .procs import instances

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PROGS = Path(__file__).parent / "progs"
UNREADY = 1.5  # seconds between "readiness fails" and the deregistration
DRAIN = 1.5  # seconds between the deregistration and the server's stop


def probe(url: str) -> Tuple[Optional[int], Dict[str, Any]]:
    """The status and body of a probe; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return None, {}


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Timeline:
    """Threads polling the server and etcd; each notes when its condition first held."""

    def __init__(self) -> None:
        self.first: Dict[str, float] = {}
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []

    def poll(self, name: str, condition: Callable[[], bool]) -> None:
        def run() -> None:
            while not self.stop.is_set() and name not in self.first:
                if condition():
                    self.first[name] = time.monotonic()  # once seen: the change happened before
                self.stop.wait(0.01)

        thread = threading.Thread(target=run, name=f"poll-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


@pytest.fixture
def timeline() -> Iterator[Timeline]:
    line = Timeline()
    yield line
    line.close()


def assert_shutdown_order(server: Proc, port: int, service: str, etcd_endpoints: List[str],
                          timeline: Timeline) -> None:
    client = raw_client(etcd_endpoints)
    try:
        readyz = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: probe(readyz)[0] == 200, timeout=60, message=f"/readyz to answer 200:\n{server.output()}")
        [record] = instances(client, service)
        assert record["address"] == f"127.0.0.1:{port}"
        assert probe(f"http://127.0.0.1:{port}/healthz")[0] == 200
        ready_body = probe(readyz)[1]
        assert ready_body["status"] == "ready" and ready_body["id"] == record["id"]

        seen_in_etcd: List[Tuple[float, bool]] = []

        def gone() -> bool:
            present = bool(instances(client, service))
            seen_in_etcd.append((time.monotonic(), present))
            return not present

        timeline.poll("unready", lambda: probe(readyz)[0] == 503)
        timeline.poll("gone", gone)
        timeline.poll("closed", lambda: not accepts(port))
        sigterm = time.monotonic()
        server.signal(signal.SIGTERM)
        wait_until(lambda: len(timeline.first) == 3, timeout=30,
                   message=f"readiness to fail, the record to go and the port to close: {timeline.first}\n"
                           f"{server.output()}")
        first = timeline.first
        assert sigterm <= first["unready"] < first["gone"] < first["closed"], (first, server.output())
        # The record was still in etcd after /readyz answered 503 ...
        assert any(present and t > first["unready"] for t, present in seen_in_etcd), first
        # ... and readiness had failed for about unready_delay before it went; the port closed a drain later.
        assert first["gone"] - first["unready"] > UNREADY / 2, first
        assert first["closed"] - first["gone"] > DRAIN / 2, first
        assert server.popen.wait(30) in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal
    finally:
        client.close()


def env_for(etcd_endpoints: List[str], service: str, **extra: str) -> Dict[str, str]:
    return {"FYERREG_ETCD": ",".join(etcd_endpoints), "PROBES_SERVICE": service, "PROBES_UNREADY": str(UNREADY),
            "PROBES_DRAIN": str(DRAIN), **extra}


@pytest.mark.parametrize("worker", ["sync", "uvicorn"])
def test_sigterm_to_gunicorn_fails_readiness_then_deregisters_then_stops_accepting(
        etcd_endpoints: List[str], procs: List[Proc], timeline: Timeline, worker: str) -> None:
    port = free_port()
    service = f"probes-gunicorn-{worker}"
    app = {"sync": {}, "uvicorn": {"PROBES_APP": "probes_app:hello",
                                   "PROBES_WORKER": "uvicorn.workers.UvicornWorker"}}[worker]
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(PROGS / "gunicorn_probes.conf.py")],
                  env=env_for(etcd_endpoints, service, PORT=str(port), **app))
    procs.append(master)
    assert_shutdown_order(master, port, service, etcd_endpoints, timeline)


def test_sigterm_to_uvicorn_fails_readiness_then_deregisters_then_stops_accepting(
        etcd_endpoints: List[str], procs: List[Proc], timeline: Timeline) -> None:
    port = free_port()
    server = Proc([sys.executable, "-m", "uvicorn", "--app-dir", str(PROGS), "probes_app:asgi_app",
                   "--port", str(port)], env=env_for(etcd_endpoints, "probes-uvicorn"))
    procs.append(server)
    assert_shutdown_order(server, port, "probes-uvicorn", etcd_endpoints, timeline)


def test_a_gunicorn_worker_answers_starting_then_ready_from_the_registrar_and_fails_once_it_is_gone(
        etcd_endpoints: List[str], procs: List[Proc]) -> None:
    port = free_port()
    started = time.time() - 1
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(PROGS / "gunicorn_probes.conf.py")],
                  env=env_for(etcd_endpoints, "probes-gunicorn-relay", PORT=str(port)))
    procs.append(master)
    healthz = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: probe(healthz)[0] == 200, timeout=60, message=master.output())
    wait_until(lambda: probe(healthz)[1].get("status") == "ok", timeout=30, message=master.output())
    [pid] = [child for child in child_pids(master.popen.pid)
             if "fyerreg.contrib._registrar" in (process_cmdline(child) or [])]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5) as resp:
        assert resp.read() == b"hello"  # everything else reaches the app
    os.kill(pid, signal.SIGKILL)  # a registrar that died: nothing keeps the registration
    wait_until(lambda: probe(healthz)[0] == 503, timeout=15, message=master.output())
    status, body = probe(f"http://127.0.0.1:{port}/readyz")
    assert status == 503 and body["status"] == "no-registrar"
    # Stopped as gunicorn is, its exit hook removes the probes' socket directory.
    probe_dirs = {path for path in glob.glob(os.path.join(tempfile.gettempdir(), "fyerreg-probes-*"))
                  if os.stat(path).st_mtime >= started}
    master.stop(signal.SIGTERM)
    assert probe_dirs and not [path for path in probe_dirs if os.path.exists(path)]
