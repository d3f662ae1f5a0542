"""gunicorn started while etcd is down: the app serves at once, and the registrar registers it
once etcd answers (it used to exit with status 1 and never register)."""

from __future__ import annotations

import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import List

import pytest

from fyerreg.testing import EtcdServer, raw_client
from tests.helpers import Proc, child_pids, free_port, process_alive, process_cmdline, wait_until

from .procs import instances

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

CONF = Path(__file__).parent / "progs" / "gunicorn_quick_dial.conf.py"  # each attempt fails within 1 s



def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_gunicorn_started_while_etcd_is_down_is_registered_once_etcd_answers(
        etcd_server: EtcdServer, procs: List[Proc]) -> None:
    etcd_server.stop()
    port = free_port()
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(CONF)],
                  env={"PORT": str(port), "FYERREG_ETCD": etcd_server.endpoint})
    procs.append(master)
    master.wait_for("etcd does not answer")
    url = f"http://127.0.0.1:{port}/hello/x"
    wait_until(lambda: answers(url), timeout=30, message="the app to serve")
    # etcd stays down a while: the app keeps serving, the registrar keeps retrying (attempts at
    # about 0, 1.5, 3.5 and 6.5 s), which is reported once.
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        assert answers(url)
        time.sleep(0.2)
    registrars = [pid for pid in child_pids(master.popen.pid)
                  if "fyerreg.contrib._registrar" in (process_cmdline(pid) or [])]
    assert len(registrars) == 1, master.output()
    etcd_server.start()
    client = raw_client(etcd_server.endpoints)
    try:
        [record] = wait_until(lambda: instances(client, "hello-flask"), timeout=30)
        assert record["address"] == f"127.0.0.1:{port}"
        assert process_alive(registrars[0])
        assert sum("etcd does not answer" in line for line in master.lines) == 1, master.output()
        master.signal(signal.SIGTERM)
        wait_until(lambda: instances(client, "hello-flask") == [], timeout=3.0)
        assert master.wait() == 0, master.output()
    finally:
        client.close()
