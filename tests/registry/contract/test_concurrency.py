"""Contract: many threads writing at once leave one consistent state, seen alike by list and watch."""

from __future__ import annotations

import threading
from typing import List

import pytest

from fyerreg import Snapshot
from tests.helpers import ids, wait_until
from tests.registry.contract.support import SERVICE, make_instance

pytestmark = pytest.mark.chosen_ids  # every test here reads back the ids it chose

THREADS = 16
ROUNDS = 12


def _survives(round_: int) -> bool:
    return round_ % 3 != 0


def test_concurrent_writers_leave_a_consistent_state(backend):
    registries = [backend.new() for _ in range(4)]
    watcher = backend.new()
    sub = watcher.subscribe(SERVICE, maxsize=4)
    errors: List[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(n: int) -> None:
        registry = registries[n % len(registries)]
        try:
            barrier.wait(timeout=30)
            for j in range(ROUNDS):
                inst = make_instance(f"t{n:02d}-{j:02d}", port=9000 + n)
                registry.register(inst)
                if j % 2:
                    registry.update_service(inst.replace(weight=j))
                if not _survives(j):
                    registry.deregister(inst)
                    registry.deregister(inst)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,), name=f"test-writer-{n}") for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "writers did not finish"
    assert errors == []

    expected = sorted(f"t{n:02d}-{j:02d}" for n in range(THREADS) for j in range(ROUNDS) if _survives(j))
    listed = watcher.list_services(SERVICE)
    assert ids(listed) == expected
    for inst in listed:
        round_ = int(inst.id.split("-")[1])
        assert inst.weight == (round_ if round_ % 2 else 100), inst

    latest: List[Snapshot] = []

    def caught_up() -> bool:
        # The whole contents, not only the ids: a snapshot can list every id while the
        # last weight update is still on its way.
        snap = sub.drain()
        if snap is not None:
            latest[:] = [snap]
        return bool(latest) and list(latest[0]) == listed

    wait_until(caught_up, timeout=30, message="the subscription never showed the listed state")
    for n, registry in enumerate(registries):
        for m in range(n, THREADS, len(registries)):
            for j in range(ROUNDS):
                state = registry.registration_state(make_instance(f"t{m:02d}-{j:02d}", port=9000 + m))
                assert state.registered == _survives(j), (m, j)
