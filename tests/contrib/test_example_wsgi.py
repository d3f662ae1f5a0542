"""examples/wsgi_app.py as a real process: registered once it serves, gone at once on SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import urllib.request
from typing import Any, List

import pytest

from tests.helpers import Proc, free_port, wait_until

from .procs import EXAMPLES, instances, python

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

GONE_WITHIN = 3.0  # seconds: less than the example's 5 s TTL, so only deregistration explains it



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_wsgi_example_registers_while_serving_and_deregisters_on_a_signal(
        signum: int, etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc]) -> None:
    port = free_port()
    proc = python(str(EXAMPLES / "wsgi_app.py"), "--port", str(port), "--etcd", ",".join(etcd_endpoints))
    procs.append(proc)
    proc.wait_for("user-service serving on")
    [record] = wait_until(lambda: instances(etcd_client, "user-service"), timeout=30)
    assert record["address"] == f"127.0.0.1:{port}"
    if signum == signal.SIGTERM:
        # Not before SIGINT: wsgiref's request handler swallows a KeyboardInterrupt raised
        # while it still finishes a request (a bare except), and the server would go on.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
            assert reply.read() == b"hello from user-service\n"

    proc.signal(signum)
    wait_until(lambda: instances(etcd_client, "user-service") == [], timeout=GONE_WITHIN)
    proc.wait(timeout=15)
