"""A Discovery used in a forked child: fresh locks there, so a lock held at fork time cannot hang it."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

from fyerreg import Discovery, Instance, MemoryRegistry, Subscription
from tests.helpers import wait_child


def test_child_picks_although_a_parent_thread_held_the_locks_at_fork() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        registry.register(Instance.new("svc", "1", "127.0.0.1:8001", id="a"))
        assert discovery.select("svc", "1").id == "a"
        view = discovery._views[("svc", "1")]
        # As if other threads were inside a refresh and a first subscribe when the fork happened.
        view._lock.acquire()
        discovery._open_lock.acquire()
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    registry.register(Instance.new("svc", "1", "127.0.0.1:8002", id="b"))
                    seen = sorted(i.id for i in discovery.instances("svc", "1"))  # refreshes: takes the view lock
                    other = discovery.instances("other", "1")  # opens a view: takes the open lock
                    code = 0 if (seen, other) == (["a", "b"], []) else 1
                finally:
                    os._exit(code)
        finally:
            view._lock.release()
            discovery._open_lock.release()
        assert wait_child(pid) == 0
        assert discovery.select("svc", "1").id == "a"


def test_child_calls_although_balancer_health_and_metrics_locks_were_held_at_fork() -> None:
    with MemoryRegistry() as registry, Discovery(registry, balancer="least_requests") as discovery:
        registry.register(Instance.new("svc", "1", "127.0.0.1:8001", id="a"))
        with discovery.pick("svc", "1"):
            pass
        view = discovery._views[("svc", "1")]
        held = [view._balancer._lock, view._health._lock, discovery._metrics._lock]  # type: ignore[attr-defined,union-attr]
        for lock in held:  # as if threads were recording a call when the fork happened
            lock.acquire()
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    with discovery.pick("svc", "1") as inst:  # balancer in-flight counts, then health
                        pass
                    discovery.report(inst, latency=0.001, error=True)
                    code = 0 if inst.id == "a" and discovery.stats() else 1
                finally:
                    os._exit(code)
        finally:
            for lock in held:
                lock.release()
        assert wait_child(pid, timeout=15) == 0


def test_child_reads_new_snapshots_although_a_parent_thread_held_the_subscription_queue_lock() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        registry.register(Instance.new("svc", "1", "127.0.0.1:8001", id="a"))
        assert discovery.select("svc", "1").id == "a"
        queue_lock = discovery._views[("svc", "1")]._sub._queue.mutex  # type: ignore[union-attr]
        queue_lock.acquire()  # as if the watch were publishing when the fork happened
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    registry.register(Instance.new("svc", "1", "127.0.0.1:8002", id="b"))  # publishes
                    seen = sorted(i.id for i in discovery.instances("svc", "1"))  # drains
                    code = 0 if seen == ["a", "b"] else 1
                finally:
                    os._exit(code)
        finally:
            queue_lock.release()
        assert wait_child(pid, timeout=15) == 0


class GatedRegistry(MemoryRegistry):
    """A MemoryRegistry whose subscribe waits at a gate while ``gate`` is closed (a slow backend)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def subscribe(self, service: str, version: Optional[str] = None, **kwargs: Any) -> Subscription:
        self.entered.set()
        self.gate.wait()
        return super().subscribe(service, version, **kwargs)


def test_child_subscribes_itself_when_a_parent_thread_was_subscribing_at_fork() -> None:
    with GatedRegistry() as registry, Discovery(registry) as discovery:
        registry.register(Instance.new("svc", "1", "127.0.0.1:8001", id="a"))
        picker = threading.Thread(target=discovery.select, args=("svc", "1"), name="picker")
        picker.start()
        try:
            assert registry.entered.wait(5)  # the parent's first subscribe to svc is under way
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    registry.gate.set()  # the child's own subscribe goes through
                    code = 0 if discovery.select("svc", "1").id == "a" else 1
                finally:
                    os._exit(code)
        finally:
            registry.gate.set()
            picker.join(5)
        assert wait_child(pid, timeout=15) == 0
