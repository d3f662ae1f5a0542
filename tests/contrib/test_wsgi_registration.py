"""contrib.wsgi.ServiceRegistration: register while an app serves, deregister on exit or on a signal."""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Iterator, List

import pytest

from fyerreg import MemoryRegistry, _signals
from fyerreg.contrib.wsgi import ServiceRegistration
from tests.helpers import wait_until


@pytest.fixture
def bound() -> Iterator[socket.socket]:
    """A socket bound to a free port that does not listen yet: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def registered(registry: MemoryRegistry) -> List[str]:
    return [i.address for i in registry.list_services("app", "1.0.0")]


def test_registers_only_once_the_address_accepts_connections(registry: MemoryRegistry, bound: socket.socket) -> None:
    port = bound.getsockname()[1]
    with ServiceRegistration(registry, "app", address=f"127.0.0.1:{port}", drain_delay=0) as reg:
        assert not reg.wait_registered(0.3)
        assert registered(registry) == []
        bound.listen()
        assert reg.wait_registered(10)
        assert registered(registry) == [f"127.0.0.1:{port}"]
    assert registered(registry) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("fyerreg-register")]


def test_every_interface_is_advertised_as_a_dialable_address(registry: MemoryRegistry, bound: socket.socket) -> None:
    bound.listen()
    port = bound.getsockname()[1]
    with ServiceRegistration(registry, "app", address=f"0.0.0.0:{port}", wait_ready=False, drain_delay=0):
        [address] = registered(registry)
        assert not address.startswith("0.0.0.0") and address.endswith(f":{port}")


def test_gives_up_when_the_address_never_answers(registry: MemoryRegistry, bound: socket.socket) -> None:
    port = bound.getsockname()[1]
    with ServiceRegistration(registry, "app", address=f"127.0.0.1:{port}", ready_timeout=0.3) as reg:
        assert not reg.wait_registered(10)
        assert registered(registry) == []


def test_a_forked_child_never_deregisters_its_parents_instance(registry: MemoryRegistry,
                                                                bound: socket.socket) -> None:
    bound.listen()
    reg = ServiceRegistration(registry, "app", address=f"127.0.0.1:{bound.getsockname()[1]}", wait_ready=False,
                              drain_delay=0)
    reg.start()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        reg.stop()
        os._exit(0 if reg.registered else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert len(registered(registry)) == 1
    reg.stop()
    assert registered(registry) == []


def test_sigterm_deregisters_then_runs_the_previous_handler(registry: MemoryRegistry, bound: socket.socket) -> None:
    bound.listen()
    seen: List[int] = []
    state_when_previous_ran: List[List[str]] = []

    def previous(signum: int, frame: object) -> None:
        seen.append(signum)
        state_when_previous_ran.append(registered(registry))

    old = signal.signal(signal.SIGTERM, previous)
    try:
        reg = ServiceRegistration(registry, "app", address=f"127.0.0.1:{bound.getsockname()[1]}", wait_ready=False,
                                  handle_signals=True, drain_delay=0)
        reg.start()
        assert len(registered(registry)) == 1
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: seen, timeout=10)
        assert seen == [signal.SIGTERM]
        assert state_when_previous_ran == [[]]
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)


def test_bad_arguments_are_rejected_before_anything_is_registered(registry: MemoryRegistry) -> None:
    with pytest.raises(ValueError, match="port"):
        ServiceRegistration(registry, "app", address="127.0.0.1")
    with pytest.raises(ValueError, match="service"):
        ServiceRegistration(registry, "a/b", address="127.0.0.1:80")
    with pytest.raises(TypeError, match="Registry"):
        ServiceRegistration(object(), "app", address="127.0.0.1:80")  # type: ignore[arg-type]
    assert registry.list_services("app") == []


def test_a_signal_repeated_while_its_handler_runs_does_not_cut_it_short() -> None:
    # SIGTERM to a process group and then again from a parent passing it on: the second
    # one arrives while the first one's deregistration runs.
    calls: List[str] = []

    def previous(signum: int, frame: object) -> None:
        calls.append("previous")

    def callback(signum: int) -> None:
        calls.append("callback")
        if calls.count("callback") == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs as soon as os.kill returns
        calls.append("callback done")

    old = signal.signal(signal.SIGTERM, previous)
    try:
        _signals.install(callback)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: "previous" in calls, timeout=10)
        assert calls == ["callback", "callback done", "previous"]
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
