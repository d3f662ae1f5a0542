"""Fork safety of every lock: each lock of every fyerreg object, held by a parent's thread at
the fork, is free in the child, and the child's registries and discoveries answer.

The app forked is a fresh interpreter (``python -m tests.test_fork_locks ENDPOINTS``): the
pytest process carries gRPC state of earlier tests (see tests/contrib/test_fork_etcd.py).
It builds one object of every kind, finds every lock they hold by walking the whole
process (not only the objects fyerreg itself renews), has a thread hold them all while
the main thread forks, and checks in the child that each can be taken.
"""

from __future__ import annotations

import collections
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

HERE = Path(__file__).resolve().parent

_SYNC = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event)
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)


@pytest.mark.etcd
def test_every_lock_of_every_fyerreg_object_is_free_in_a_forked_child(etcd_endpoints: List[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_fork_locks", ",".join(etcd_endpoints)],
        capture_output=True, text=True, timeout=180, cwd=HERE.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "child ok" in result.stdout, result.stdout + result.stderr


# -- the app forked --------------------------------------------------------------------------


def _is_fyerreg(cls: type) -> bool:
    # On Python 3.9 some classes' __module__ is a slot descriptor, not a str.
    return any(str(getattr(base, "__module__", "")).split(".")[0] == "fyerreg" for base in cls.__mro__)


def _attributes(obj: Any) -> Iterator[Tuple[str, Any]]:
    if hasattr(obj, "__dict__"):
        yield from vars(obj).items()
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if hasattr(obj, name) and name not in ("__dict__", "__weakref__"):
                yield name, getattr(obj, name)


def _locks_in(value: Any, label: str, out: Dict[int, Tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, _SYNC):
        out.setdefault(id(value), (label, value))
    elif isinstance(value, _CONTAINERS) and depth < 4:
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else list(value)
        for item in items:
            _locks_in(item, f"{label}[]", out, depth + 1)


def every_fyerreg_lock() -> List[Tuple[str, Any]]:
    """(where, lock) for every sync primitive held by a live fyerreg object, a closure of fyerreg
    code, or a global of a fyerreg module: found through the garbage collector, so whatever
    holds it, not through fyerreg's own idea of what is reachable."""
    out: Dict[int, Tuple[str, Any]] = {}
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType):
            if obj.__module__ and obj.__module__.startswith("fyerreg"):
                for n, cell in enumerate(obj.__closure__ or ()):
                    try:
                        _locks_in(cell.cell_contents, f"{obj.__qualname__}<closure {n}>", out)
                    except ValueError:
                        pass
        elif not isinstance(obj, type) and _is_fyerreg(type(obj)):
            for name, value in _attributes(obj):
                _locks_in(value, f"{type(obj).__qualname__}.{name}", out)
    for modname, module in list(sys.modules.items()):
        if modname.split(".")[0] == "fyerreg":
            for name, value in vars(module).items():
                _locks_in(value, f"{modname}.{name}", out)
    return sorted(out.values(), key=lambda item: item[0])


def primitive(lock: Any) -> Any:
    """The Lock or RLock that taking ``lock`` takes."""
    if isinstance(lock, threading.Event):
        lock = lock._cond  # type: ignore[attr-defined]
    if isinstance(lock, threading.Condition):
        lock = lock._lock  # type: ignore[attr-defined]
    return lock


def hold_all(locks: List[Any], holding: threading.Event, release: threading.Event) -> None:
    """In a thread of its own: take every lock (all or none, so as never to deadlock with a
    background thread that takes two), tell ``holding``, keep them until ``release``."""
    deadline = time.monotonic() + 30
    while True:
        taken = []
        for lock in locks:
            if not lock.acquire(timeout=0.2):
                break
            taken.append(lock)
        if len(taken) == len(locks):
            break
        for lock in reversed(taken):
            lock.release()
        if time.monotonic() > deadline:
            raise SystemExit("could not take every lock in the parent")
        time.sleep(0.01)
    holding.set()
    release.wait()
    for lock in reversed(taken):
        lock.release()


def build(endpoints: List[str], tmp: str) -> List[Any]:
    """One object of every kind, in use."""
    from fyerreg import Discovery, Instance, MemoryRegistry
    from fyerreg.api import Client, ClientOptions, Server, ServerOptions
    from fyerreg.contrib.wsgi import ServiceRegistration
    from fyerreg.discovery import balancer_names
    from fyerreg.metrics import Metrics
    from fyerreg.registry.etcd import EtcdRegistry

    class Echo:
        def Say(self, request: Dict[str, Any]) -> Dict[str, Any]:
            return request

    objs: List[Any] = []
    memory = MemoryRegistry(ttl=30)
    etcd = EtcdRegistry(endpoints=endpoints, namespace=f"forklocks-{uuid.uuid4().hex[:8]}", ttl=10, cache=True)
    objs += [memory, etcd]
    for reg in (memory, etcd):
        reg.register(Instance.new("svc", "1", "127.0.0.1:8001", id="a"))
        objs.append(reg.subscribe("svc", "1", timeout=5))
        reg.list_services("svc", "1")
    for n, name in enumerate(balancer_names()):
        d = Discovery(memory, balancer=name, snapshot_file=os.path.join(tmp, f"snap{n}.json"))
        with d.pick("svc", "1", key="k"):
            pass
        d.report(d.select("svc", "1", key="k"), latency=0.01, error=True)
        objs.append(d)
    etcd_discovery = Discovery(etcd, snapshot_file=os.path.join(tmp, "etcd.json"))
    etcd_discovery.select("svc", "1")
    server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=memory,
                                  service_name="echo", drain_delay=0.0))
    server.register(Echo())
    server.start()
    client_discovery = Discovery(memory)
    client = Client(ClientOptions(discovery=client_discovery, service_name="echo"))
    assert client.call("Echo", "Say", {"x": 1}) == {"x": 1}
    assert server.address is not None
    registration = ServiceRegistration(memory, "app", address=server.address, handle_signals=False)
    registration.start()
    metrics = Metrics()
    metrics.inc("calls")
    objs += [etcd_discovery, server, client_discovery, client, registration, metrics]
    return objs


def check_child(objs: List[Any], tmp: str) -> List[str]:
    """In the child: every lock free; then the objects answer (registries, discoveries, metrics)."""
    from fyerreg import Discovery, Instance, MemoryRegistry

    stuck = []
    for where, lock in every_fyerreg_lock():
        base = primitive(lock)
        if base.acquire(blocking=False):
            base.release()
        else:
            stuck.append(where)
    if stuck:
        return stuck
    memory = next(o for o in objs if isinstance(o, MemoryRegistry))
    for obj in objs:
        if hasattr(obj, "stats"):
            obj.stats()
    memory.register(Instance.new("svc", "1", "127.0.0.1:8002", id="b"))
    for d in (o for o in objs if isinstance(o, Discovery) and o._registry is memory):
        deadline = time.monotonic() + 10
        while {i.id for i in d.instances("svc", "1")} != {"a", "b"}:  # saves to its snapshot_file
            if time.monotonic() > deadline:
                return [f"{d!r} never saw instance b"]
            time.sleep(0.01)
    return []


def main(endpoints: List[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        objs = build(endpoints, tmp)
        found = every_fyerreg_lock()
        names = {where for where, _ in found}
        # The walk is not vacuous: it finds the locks named when the holes were found.
        for expected in ("Metrics._lock", "RecordDecoder._lock", "SnapshotFile._lock", "Discovery._open_lock"):
            assert expected in names, (expected, sorted(names))
        locks = list({id(primitive(lock)): primitive(lock) for _, lock in found}.values())
        holding, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=hold_all, args=(locks, holding, release), name="lock-holder", daemon=True)
        holder.start()
        if not holding.wait(60):
            print("could not take every lock in the parent")
            return 1
        read, write = os.pipe()
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    os.close(read)
                    problems = check_child(objs, tmp)
                    os.write(write, "\n".join(problems).encode())
                    code = 1 if problems else 0
                finally:
                    os._exit(code)
        finally:
            release.set()
        os.close(write)
        holder.join()
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                print("the forked child hung")
                return 1
            time.sleep(0.02)
        with os.fdopen(read) as fh:
            report = fh.read()
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            print(f"{len(locks)} locks held at the fork; in the child:\n{report or 'exit status ' + str(status)}")
            return 1
        print(f"child ok: {len(locks)} locks held at the fork were free in the child")
        for obj in reversed(objs):
            for method in ("close", "stop"):
                if hasattr(obj, method):
                    getattr(obj, method)()
                    break
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].split(",")))
