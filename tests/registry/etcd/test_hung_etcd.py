"""A frozen etcd (SIGSTOP) under calls in flight: close() and deregister() keep to their timeout."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, List, Optional

import pytest

from fyerreg import RegistryClosedError, RegistryError, RegistryUnavailableError
from fyerreg.testing import raw_client
from tests.helpers import fyerreg_threads, wait_until

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd

# What a timeout may overrun by: scheduling on a loaded machine; the defects were 5-20 s over.
SLACK = 1.5


def in_etcd_call(thread: threading.Thread) -> bool:
    """True while ``thread`` waits on an etcd call (a frame of the client's call attempt is on its stack)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "attempt" and frame.f_code.co_filename.endswith("_client.py"):
            return True
        frame = frame.f_back
    return False


def keepalive_thread(name: str) -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == f"fyerreg-keepalive-{SERVICE}-{name}")


class Background:
    """Runs ``func`` in a thread of the test; keeps what it raised."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(func,), name="test-background", daemon=True)
        self.thread.start()

    def _run(self, func: Callable[[], Any]) -> None:
        try:
            func()
        except BaseException as exc:  # kept for the test to look at
            self.error = exc


def close_warnings(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and "close" in r.getMessage()]


def close_within_its_timeout(registry, caplog: pytest.LogCaptureFixture) -> str:
    """close(timeout=2) on a frozen etcd: it returns in time with one warning; that warning's text."""
    caplog.clear()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        registry.close(timeout=2)
    assert time.monotonic() - started < 2 + SLACK
    warnings = close_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    return warnings[0].getMessage()


@pytest.mark.parametrize("call", ["register", "update_service"])
def test_close_returns_within_its_timeout_while_another_thread_writes_to_a_frozen_etcd(
        etcd_server, registries, caplog, call):
    # dial_timeout 5 s, 3 retries 3 s apart and more: the call in flight lasts over 20 s.
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=30, dial_timeout=5, max_retry=3,
                              retry_interval=3.0)
    steady, busy = make_instance("steady"), make_instance("busy")
    registry.register(steady)
    if call == "update_service":
        registry.register(busy)
    etcd_server.pause()
    try:
        writer = Background(lambda: getattr(registry, call)(busy.replace(weight=5)))
        wait_until(lambda: in_etcd_call(writer.thread), timeout=5, message=f"{call} waits on etcd")
        # One warning says what was left to the leases' ttl, naming both instances.
        warning = close_within_its_timeout(registry, caplog)
        assert "steady" in warning and "busy" in warning
        assert "within 29s" in warning  # ttl 30: the lease is granted a second shorter
        # The call in flight ended with the connection.
        writer.thread.join(SLACK)
        assert not writer.thread.is_alive()
        assert isinstance(writer.error, RegistryClosedError), writer.error
        assert not [t for t in fyerreg_threads() if t.startswith("fyerreg-keepalive")]
    finally:
        etcd_server.resume()


def test_deregister_returns_within_its_timeout_while_a_heartbeat_waits_on_a_frozen_etcd(etcd_server, registries):
    # ttl 15: a heartbeat every 5 s, each given up to dial_timeout (5 s) to answer.
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=15, dial_timeout=5, max_retry=3,
                              retry_interval=1.0)
    inst = make_instance("beating")
    registry.register(inst)
    keeper = keepalive_thread("beating")
    etcd_server.pause()
    try:
        wait_until(lambda: in_etcd_call(keeper), timeout=10, message="a heartbeat waits on etcd")
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError):
            registry.deregister(inst, timeout=1)
        assert time.monotonic() - started < 1 + SLACK
        assert not registry.registration_state(inst).registered
    finally:
        etcd_server.resume()
    # Nothing keeps it alive now: the heartbeat in flight ends and writes nothing.
    keeper.join(10)
    assert not keeper.is_alive()
    registry.close(timeout=5)


def test_deregister_with_a_heartbeat_in_flight_removes_the_record_once_etcd_answers(etcd_server, registries):
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=15, dial_timeout=5)
    inst = make_instance("late")
    registry.register(inst)
    keeper = keepalive_thread("late")
    etcd_server.pause()
    wait_until(lambda: in_etcd_call(keeper), timeout=10, message="a heartbeat waits on etcd")
    remover = Background(lambda: registry.deregister(inst, timeout=4))
    try:
        wait_until(lambda: in_etcd_call(remover.thread), timeout=5, message="deregister waits on etcd")
    finally:
        etcd_server.resume()
    remover.thread.join(4 + SLACK)
    assert not remover.thread.is_alive() and remover.error is None, remover.error
    client = raw_client(etcd_server.endpoints)
    try:
        assert not list(client.get_prefix(f"/{registries.namespace}/services/"))
    finally:
        client.close()
    keeper.join(10)
    assert not keeper.is_alive()


@pytest.mark.parametrize("options", [{}, {"auto_sync_interval": 0.2}], ids=["plain", "auto-sync"])
def test_close_with_nothing_in_flight_on_a_frozen_etcd_warns_once_and_keeps_its_timeout(
        etcd_server, registries, caplog, options):
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=30, dial_timeout=5, max_retry=3,
                              retry_interval=1.0, cache=(True, 60), **options)
    for name in ("one", "two", "three"):
        registry.register(make_instance(name))
    registry.subscribe(SERVICE)
    registry.list_services(SERVICE)
    etcd_server.pause()
    if options:
        sync = next(t for t in threading.enumerate() if t.name == "fyerreg-etcd-autosync")
        wait_until(lambda: in_etcd_call(sync), timeout=5, message="the member list refresh waits on etcd")
    try:
        warning = close_within_its_timeout(registry, caplog)
        assert all(name in warning for name in ("one", "two", "three"))
    finally:
        etcd_server.resume()


def test_a_register_that_close_overtook_leaves_no_record_once_etcd_answers(etcd_server, registries):
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=30, dial_timeout=5)
    inst = make_instance("overtaken")
    etcd_server.pause()
    writer = Background(lambda: registry.register(inst, timeout=8))
    try:
        wait_until(lambda: in_etcd_call(writer.thread), timeout=5, message="register waits on etcd")
        registry.close(timeout=1)
    finally:
        etcd_server.resume()
    writer.thread.join(8 + SLACK)
    assert isinstance(writer.error, RegistryError), writer.error
    client = raw_client(etcd_server.endpoints)
    try:
        assert not list(client.get_prefix(f"/{registries.namespace}/services/"))
    finally:
        client.close()
