"""Contract: registering, listing, updating and removing instances; errors; closing."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Tuple

import pytest

from fyerreg import (
    AlreadyRegisteredError,
    InvalidInstanceError,
    NotRegisteredError,
    RegistryClosedError,
    Status,
)
from tests.helpers import ids, next_snapshot, no_fyerreg_thread_left, wait_until
from tests.registry.contract.support import SERVICE, make_instance, unstamped


@pytest.mark.chosen_ids
def test_register_list_deregister_round_trip(backend):
    writer, reader = backend.new(), backend.new()
    b = make_instance("b-2", port=8002, weight=7, status=Status.DISABLED, metadata={"zone": "eu-1", "città": "Zürich"})
    a = make_instance("a-1", port=8001)
    writer.register(b)
    writer.register(a)

    for registry in (writer, reader):
        listed = registry.list_services(SERVICE, "v1")
        assert ids(listed) == ["a-1", "b-2"]
        assert unstamped(listed) == [a, b]
    now_ms = time.time() * 1000
    assert all(abs(inst.updated_at - now_ms) < 3_600_000 for inst in listed), "updated_at is Unix ms"

    writer.deregister(b)
    assert unstamped(reader.list_services(SERVICE, "v1")) == [a]
    writer.deregister(a)
    assert reader.list_services(SERVICE, "v1") == []
    assert reader.list_services(SERVICE) == []


@pytest.mark.chosen_ids
def test_list_filters_by_service_and_version(backend):
    registry = backend.new()
    x2 = "x" if backend.ids_per_version else "x2"  # else the same id in v2 would replace v1's
    for inst in (
        make_instance("x", version="v1"),
        make_instance(x2, version="v2"),
        make_instance("y", version="v2"),
        make_instance("z", version="v10"),  # v1 must not match v10 as a key prefix
        make_instance("x", service=SERVICE + "-other"),  # nor the service a longer one
    ):
        registry.register(inst)

    def keys(version: Any) -> List[Tuple[str, str]]:
        return [(i.id, i.version) for i in registry.list_services(SERVICE, version)]

    assert keys("v1") == [("x", "v1")]
    assert keys("v2") == [(x2, "v2"), ("y", "v2")]
    assert keys(None) == [("x", "v1"), (x2, "v2"), ("y", "v2"), ("z", "v10")]
    assert registry.list_services(SERVICE) == registry.list_services(SERVICE, None)
    assert keys("v3") == []
    assert registry.list_services("nobody-registered-this") == []
    assert ids(registry.list_services(SERVICE + "-other")) == ["x"]


@pytest.mark.chosen_ids
def test_same_id_in_two_versions_are_two_instances(backend):
    backend.needs_ids_per_version()
    registry = backend.new()
    v1, v2 = make_instance("same", version="v1", port=1), make_instance("same", version="v2", port=2)
    registry.register(v1)
    registry.register(v2)
    registry.deregister(v1)
    assert unstamped(registry.list_services(SERVICE)) == [v2]


@pytest.mark.chosen_ids
def test_update_service_changes_record_in_place(backend):
    writer, reader = backend.new(), backend.new()
    inst = make_instance("u")
    writer.register(inst)
    before = reader.list_services(SERVICE)[0]
    changed = inst.replace(status=Status.DISABLED, weight=0, metadata={"k": "v"}, address="127.0.0.1:9999")
    writer.update_service(changed)
    after = reader.list_services(SERVICE)
    assert unstamped(after) == [changed]
    assert after[0].updated_at >= before.updated_at
    assert writer.registration_state(changed).registered


@pytest.mark.chosen_ids
def test_reregistering_own_instance_updates_it(backend):
    registry = backend.new()
    inst = make_instance("r")
    registry.register(inst)
    registry.register(inst.replace(weight=5))
    registry.register(inst.replace(weight=6), exclusive=True)  # our own: not a conflict
    assert unstamped(registry.list_services(SERVICE)) == [inst.replace(weight=6)]
    assert registry.registration_state(inst).registered


def test_deregister_is_idempotent(backend):
    registry, other = backend.new(), backend.new()
    inst = make_instance("d")
    registry.deregister(inst)  # never registered
    registry.register(inst)
    registry.deregister(inst)
    registry.deregister(inst)
    assert other.list_services(SERVICE) == []
    assert not registry.registration_state(inst).registered


@pytest.mark.chosen_ids
def test_deregister_leaves_alone_an_instance_another_registry_holds(backend):
    owner, stranger = backend.new(), backend.new()
    inst = make_instance("held", metadata={"by": "owner"})
    owner.register(inst)
    stranger.deregister(inst)  # not registered through it: no error, and nothing removed
    assert unstamped(stranger.list_services(SERVICE)) == [inst]
    assert owner.registration_state(inst).registered
    owner.update_service(inst.replace(weight=5))  # still the owner's, kept alive by it
    wait_until(lambda: [i.weight for i in stranger.list_services(SERVICE)] == [5])
    owner.deregister(inst)
    assert stranger.list_services(SERVICE) == []


def test_close_is_idempotent_and_deregisters(backend):
    registry, other = backend.new(), backend.new()
    inst = make_instance("c")
    registry.register(inst)
    registry.close()
    registry.close()
    assert registry.closed
    assert other.list_services(SERVICE) == []


@pytest.mark.chosen_ids
def test_context_manager_closes(backend):
    other = backend.new()
    with backend.new() as registry:
        registry.register(make_instance("cm"))
        assert ids(other.list_services(SERVICE)) == ["cm"]
    assert registry.closed
    assert other.list_services(SERVICE) == []


_INVALID: List[Tuple[str, Dict[str, Any]]] = [
    ("id", {"id": ""}),
    ("id", {"id": "a/b"}),
    ("id", {"id": "a b"}),
    ("id", {"id": "bad\x00id"}),
    ("id", {"id": "zero\u200bwidth"}),
    ("service", {"service": SERVICE + "/v1"}),
    ("version", {"version": "v1/x"}),
    ("version", {"version": ".."}),
    ("address", {"address": "no-port"}),
    ("address", {"address": "::1:80"}),
    ("address", {"address": "127.0.0.1:0"}),
    ("weight", {"weight": True}),
    ("weight", {"weight": 10_001}),
    ("metadata", {"metadata": {"k": 1}}),
    ("metadata", {"metadata": {"big": "x" * (64 * 1024)}}),
]


@pytest.mark.chosen_ids
def test_invalid_instances_are_rejected_before_any_write(backend):
    writer, watcher = backend.new(), backend.new()
    sub = watcher.subscribe(SERVICE)
    assert sub.get(timeout=10) == []
    valid = make_instance("ok")
    writer.register(valid)
    initial_listing = writer.list_services(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["ok"])

    calls: List[Callable[..., None]] = [writer.register, writer.update_service, writer.deregister]
    for field, changes in _INVALID:
        bad = valid.replace(**changes)
        for call in calls:
            with pytest.raises(InvalidInstanceError) as err:
                call(bad)
            assert err.value.field == field, (call.__name__, changes)

    marker = make_instance("marker")
    writer.register(marker)
    # The first change the watcher sees after the rejected calls is the marker: nothing was written.
    assert unstamped(next_snapshot(sub)) == [marker, valid]
    assert writer.list_services(SERVICE)[1] == initial_listing[0]
    assert unstamped(writer.list_services(SERVICE)) == [marker, valid]
    assert writer.registration_state(valid).registered


@pytest.mark.chosen_ids
def test_update_service_requires_registration_here(backend):
    owner, stranger = backend.new(), backend.new()
    inst = make_instance("n")
    with pytest.raises(NotRegisteredError):
        owner.update_service(inst)
    owner.register(inst)
    with pytest.raises(NotRegisteredError):
        stranger.update_service(inst.replace(weight=1))
    assert unstamped(stranger.list_services(SERVICE)) == [inst]
    owner.deregister(inst)
    with pytest.raises(NotRegisteredError):
        owner.update_service(inst)
    assert stranger.list_services(SERVICE) == []


@pytest.mark.chosen_ids
def test_exclusive_register_refuses_an_instance_held_elsewhere(backend):
    first, second = backend.new(), backend.new()
    inst = make_instance("e", port=1)
    first.register(inst)
    with pytest.raises(AlreadyRegisteredError):
        second.register(inst.replace(address="127.0.0.1:2"), exclusive=True)
    assert unstamped(second.list_services(SERVICE)) == [inst]
    assert first.registration_state(inst).registered
    assert not second.registration_state(inst).registered


@pytest.mark.chosen_ids
def test_register_takes_over_an_instance_held_elsewhere(backend):
    first, second = backend.new(), backend.new()
    old = make_instance("t", port=1)
    new = old.replace(address="127.0.0.1:2")
    first.register(old)
    second.register(new)
    assert unstamped(first.list_services(SERVICE)) == [new]
    first.deregister(old)  # the old owner's deregister must not remove what the new owner holds
    assert unstamped(first.list_services(SERVICE)) == [new]
    assert second.registration_state(new).registered
    wait_until(lambda: not first.registration_state(old).registered)
    with pytest.raises(NotRegisteredError):
        first.update_service(old)
    first.close()  # must not remove what the new owner holds
    assert unstamped(second.list_services(SERVICE)) == [new]


def test_closed_registry_raises_for_every_call(backend):
    registry = backend.new()
    inst = make_instance("z")
    registry.register(inst)
    sub = registry.subscribe(SERVICE)
    registry.close()

    calls: Dict[str, Callable[[], object]] = {
        "register": lambda: registry.register(inst),
        "deregister": lambda: registry.deregister(inst),
        "update_service": lambda: registry.update_service(inst),
        "list_services": lambda: registry.list_services(SERVICE),
        "subscribe": lambda: registry.subscribe(SERVICE),
        "unsubscribe": lambda: registry.unsubscribe(SERVICE),
        "registration_state": lambda: registry.registration_state(inst),
        "__enter__": registry.__enter__,
    }
    for name, call in calls.items():
        with pytest.raises(RegistryClosedError):
            call()
            pytest.fail(f"{name} did not raise")
    items = [sub.get(timeout=10) for _ in range(sub.qsize())]
    assert items and items[-1] is None and items.count(None) == 1


@pytest.mark.chosen_ids
def test_no_library_thread_outlives_close(backend):
    with no_fyerreg_thread_left():
        registry, other = backend.new(), backend.new()
        inst = make_instance("th")
        registry.register(inst)
        sub = other.subscribe(SERVICE)
        next_snapshot(sub, lambda s: ids(s) == ["th"])
        registry.subscribe(SERVICE, "v1")
        registry.update_service(inst.replace(weight=1))
        registry.close()
        other.close()
