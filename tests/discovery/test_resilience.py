"""Serving through mem_registry trouble: empty-set protection, the snapshot file, an unreachable mem_registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fyerreg import Discovery, MemoryRegistry, Snapshot
from fyerreg.errors import NoInstanceAvailableError
from tests.helpers import wait_until

from . import conftest
from .util import FakeClock, inst, insts, register, status_of


def test_protect_empty_keeps_the_last_set_for_a_while(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(2))
    with Discovery(mem_registry, protect_empty=30.0, clock=clock) as d:
        d.select("svc", "1.0.0")
        for i in insts(2):
            mem_registry.deregister(i)  # a wiped mem_registry: everything gone at once
        assert d.select("svc", "1.0.0").id in {"i000", "i001"}
        assert status_of(d)["protecting_empty"] is True
        clock.advance(29.0)
        assert d.select("svc", "1.0.0")
        clock.advance(1.5)
        with pytest.raises(NoInstanceAvailableError, match="no instance is registered"):
            d.select("svc", "1.0.0")


def test_protect_empty_ends_when_instances_come_back(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(2))
    with Discovery(mem_registry, protect_empty=30.0, clock=clock) as d:
        d.select("svc", "1.0.0")
        for i in insts(2):
            mem_registry.deregister(i)
        d.select("svc", "1.0.0")
        mem_registry.register(inst(9))  # instances re-register after a restore
        assert {d.select("svc", "1.0.0").id for _ in range(5)} == {"i009"}
        clock.advance(60.0)
        assert d.select("svc", "1.0.0").id == "i009"
        assert status_of(d)["protecting_empty"] is False


def test_without_protect_empty_an_empty_set_is_taken_at_once(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, inst(0))
    with Discovery(mem_registry) as d:
        d.select("svc", "1.0.0")
        mem_registry.deregister(inst(0))
        with pytest.raises(NoInstanceAvailableError):
            d.select("svc", "1.0.0")


def test_snapshot_file_gives_a_cold_start_while_the_registry_is_down(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    backend = conftest.memory_backend()
    try:
        reg = backend.new()
        register(reg, *insts(2), inst(4, version="2.0.0"))
        with Discovery(reg, snapshot_file=path) as d:
            d.select("svc", "1.0.0")
            d.select("svc", "2.0.0")
        saved = json.loads(path.read_text())
        assert {(e["service"], e["version"], len(e["instances"])) for e in saved["services"]} == {
            ("svc", "1.0.0", 2), ("svc", "2.0.0", 1)}
    finally:
        backend.close()

    down = MemoryRegistry()
    try:
        down.set_available(False)
        with Discovery(down, snapshot_file=path) as d:
            assert d.select("svc", "1.0.0").id in {"i000", "i001"}
            assert status_of(d)["stale"] is True
            with pytest.raises(NoInstanceAvailableError, match="unreachable"):
                d.select("other")
            down.set_available(True)
            register(down, inst(7))
            wait_until(lambda: status_of(d)["subscribed"])
            assert {d.select("svc", "1.0.0").id for _ in range(3)} == {"i007"}
            assert status_of(d)["stale"] is False
    finally:
        down.close()


def test_unreadable_snapshot_file_is_ignored(tmp_path: Path, mem_registry: MemoryRegistry) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    register(mem_registry, inst(0))
    with Discovery(mem_registry, snapshot_file=path) as d:
        assert d.select("svc", "1.0.0").id == "i000"
    assert json.loads(path.read_text())["services"][0]["instances"][0]["id"] == "i000"


def test_cold_start_without_file_fails_clearly_then_recovers(mem_registry: MemoryRegistry) -> None:
    mem_registry.set_available(False)
    with Discovery(mem_registry) as d:
        with pytest.raises(NoInstanceAvailableError, match="unreachable"):
            d.select("svc", "1.0.0")
        mem_registry.set_available(True)
        register(mem_registry, inst(0))
        wait_until(lambda: d.instances("svc", "1.0.0"))
        assert d.select("svc", "1.0.0").id == "i000"


def test_the_last_set_keeps_serving_while_the_registry_is_unreachable(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, *insts(3))
    with Discovery(mem_registry) as d:
        d.select("svc", "1.0.0")
        mem_registry.set_available(False)
        assert {d.select("svc", "1.0.0").id for _ in range(30)} == {"i000", "i001", "i002"}


def test_a_stale_empty_snapshot_never_empties_the_set(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, *insts(2))
    with Discovery(mem_registry) as d:
        d.select("svc", "1.0.0")
        # What a backend may publish from its cache while it cannot reach the server.
        sub = d._views[("svc", "1.0.0")]._sub
        assert sub is not None
        sub.publish(Snapshot([], revision=99, stale=True))
        assert d.select("svc", "1.0.0").id in {"i000", "i001"}
        sub.publish(Snapshot([inst(0)], revision=100, stale=True))
        assert {d.select("svc", "1.0.0").id for _ in range(4)} == {"i000"}
        assert status_of(d)["stale"] is True
