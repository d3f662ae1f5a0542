"""ServingRegistration.stop_in_thread and _signals.install_deferred: deregister and drain without blocking
the caller (an event loop), then continue (the signal's previous effect)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import List

from fyerreg import MemoryRegistry, _signals
from fyerreg.serving import InstanceSpec, ServingRegistration
from tests.helpers import wait_until


def listed(registry: MemoryRegistry) -> List[str]:
    return [i.address for i in registry.list_services("app")]


def test_stop_in_thread_returns_at_once_and_continues_after_deregistering_and_draining(
        registry: MemoryRegistry, port: int) -> None:
    reg = ServingRegistration(registry, InstanceSpec("app", address=f"127.0.0.1:{port}", drain_delay=0.5),
                              wait_ready=False)
    reg.start()
    seen: List[object] = []
    began = time.monotonic()
    reg.stop_in_thread(lambda: seen.append((threading.current_thread().name, listed(registry),
                                            time.monotonic() - began)))
    assert time.monotonic() - began < 0.4, "stop_in_thread waited for the drain"
    reg.stop_in_thread(lambda: seen.append("second"))  # while the first runs: after the same stop
    wait_until(lambda: len(seen) == 2, timeout=10)
    name, left, after = seen[0]  # type: ignore[misc]
    assert name.startswith("fyerreg-stop-") and left == [] and after >= 0.5
    assert seen[1] == "second"
    reg.stop_in_thread(lambda: seen.append(threading.current_thread().name))  # after it: at once, here
    assert seen[2] == threading.current_thread().name
    assert registry.stats()["counters"]["deregistrations"] == 1


def test_a_deferred_signal_takes_its_previous_effect_only_once_resumed_and_in_the_main_thread() -> None:
    calls: List[str] = []
    resumes: List[object] = []

    def previous(signum: int, frame: object) -> None:
        calls.append(f"previous in {threading.current_thread().name}")

    def start(signum: int, resume: object) -> None:
        calls.append("start")
        resumes.append(resume)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        restore = _signals.install_deferred(start)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: resumes, timeout=10)
        os.kill(os.getpid(), signal.SIGTERM)  # a repeat before resume() is ignored (handled as kill returns)
        assert calls == ["start"]
        threading.Thread(target=resumes[0], name="worker").start()  # type: ignore[arg-type]
        wait_until(lambda: len(calls) == 2, timeout=10)
        assert calls == ["start", "previous in MainThread"]
        assert signal.getsignal(signal.SIGTERM) is previous
        restore()
    finally:
        signal.signal(signal.SIGTERM, old)
