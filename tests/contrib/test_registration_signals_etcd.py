"""SIGTERM while a ServiceRegistration is still registering against a hung etcd, in a real process.

The process must exit promptly: a signal handler never waits for a lock held across the
registry call, nor for the whole register retry budget. A registration that etcd
completes after the process is gone (the request was already sent) has a lease nobody
keeps alive, so its record is gone within the TTL (3 s here).
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from fyerreg import EtcdRegistry
from fyerreg.contrib.wsgi import ServiceRegistration
from fyerreg.testing import EtcdServer, raw_client
from tests.helpers import free_port, fyerreg_threads, wait_until

from .procs import instances, python, some_thread_inside

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

APP = Path(__file__).parent / "progs" / "registering_app.py"
TTL = 3
EXIT_WITHIN = 7.0  # seconds: the bug made it never (wait_ready=False) or 15 s (wait_ready=True)


@pytest.fixture
def app_proc() -> Iterator[list]:
    started: list = []
    yield started
    for proc in started:
        proc.close()


@pytest.mark.parametrize("mode", ["nowait", "wait"])
def test_sigterm_during_a_hung_registration_exits_promptly_and_leaves_no_record(
        etcd_server: EtcdServer, app_proc: list, mode: str) -> None:
    app = python(str(APP), etcd_server.endpoint, str(free_port()), mode, stdin=True)
    app_proc.append(app)
    app.wait_for("connected")
    etcd_server.pause()
    try:
        app.send_line("go")
        app.wait_for("in register()")
        sent = time.monotonic()
        app.signal(signal.SIGTERM)
        code = app.wait(30)
        took = time.monotonic() - sent
    finally:
        etcd_server.resume()
    assert code == -signal.SIGTERM, app.output()
    assert took < EXIT_WITHIN, f"exit took {took:.1f}s:\n{app.output()}"
    client = raw_client(etcd_server.endpoints)
    try:
        wait_until(lambda: instances(client, "sigterm-app") == [], timeout=TTL + 3.0,
                   message="the record of a registration cut short outlived its lease")
    finally:
        client.close()


def test_a_registration_completing_after_stop_gave_up_on_it_removes_itself(etcd_server: EtcdServer) -> None:
    with EtcdRegistry(endpoints=etcd_server.endpoints, ttl=30, dial_timeout=5) as registry, \
            socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        reg = ServiceRegistration(registry, "late-app", address=f"127.0.0.1:{port}", drain_delay=0)
        etcd_server.pause()
        try:
            reg.start()
            wait_until(lambda: some_thread_inside("_do_register"), message="the registration attempt to start")
            began = time.monotonic()
            reg.stop()
            took = time.monotonic() - began
            assert took < 3.0 + 1.5, f"stop() took {took:.1f}s (it waits at most 3 s for an attempt in flight)"
        finally:
            etcd_server.resume()
        # The attempt gets through once etcd answers, then undoes itself: no record for the 30 s lease.
        wait_until(lambda: registry.stats()["counters"]["registrations"] == 1, timeout=15)
        wait_until(lambda: registry.stats()["counters"]["deregistrations"] == 1, timeout=10)
        assert registry.list_services("late-app") == []
        assert not reg.registered
        wait_until(lambda: not [t for t in fyerreg_threads() if t.startswith("fyerreg-register")], timeout=5)
