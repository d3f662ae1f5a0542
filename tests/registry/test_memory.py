"""MemoryRegistry beyond the shared contract: leases, keepalive, takeover and fault injection."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Iterator

import pytest

from fyerreg import (
    Instance,
    MemoryRegistry,
    MemoryStore,
    RegistryClosedError,
    RegistryUnavailableError,
)
from fyerreg.registry.base import MAX_TTL
from tests.helpers import Registries, fyerreg_threads, ids, make_instance, next_snapshot, pending, wait_until

SVC = "mem-svc"
TTL = 0.3  # short leases; every wait on them polls with a generous deadline


def inst(id: str = "i1", **fields: Any) -> Instance:
    return make_instance(id, service=SVC, **fields)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    yield MemoryStore()


@pytest.fixture
def new(store: MemoryStore) -> Iterator[Callable[..., MemoryRegistry]]:
    """Make registries on one store; close them all afterwards and check no thread is left."""
    made = Registries(functools.partial(MemoryRegistry, store=store), "memory")
    yield made.new
    made.close()
    assert fyerreg_threads() == []


def counters(registry: MemoryRegistry) -> Any:
    return registry.stats()["counters"]


# -- construction ---------------------------------------------------------------------------


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="ttl"):
        MemoryRegistry(ttl=0)
    # The same bound as etcd's (fyerreg.registry.base.MAX_TTL, etcd's MaxLeaseTTL).
    for too_long in (MAX_TTL + 1, 2**63, float("inf")):
        with pytest.raises(ValueError, match=r"ttl must be .*<= 9000000000"):
            MemoryRegistry(ttl=too_long)
    with pytest.raises(TypeError, match="ttl"):
        MemoryRegistry(ttl="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store"):
        MemoryRegistry(store=object())  # type: ignore[arg-type]


def test_the_longest_ttl_etcd_allows_is_accepted(new):
    registry = new(ttl=MAX_TTL)
    registry.register(inst())
    assert registry.registration_state(inst()).registered and registry.ttl == MAX_TTL


def test_private_store_per_registry_and_shared_store_between_registries(new, store):
    with MemoryRegistry() as alone:
        alone.register(inst("private"))
        assert alone.store is not store
        assert new().list_services(SVC) == []
    a, b = new(), new()
    a.register(inst("shared"))
    assert ids(b.list_services(SVC)) == ["shared"]
    assert a.store is b.store is store


def test_every_write_increments_the_store_revision(new, store):
    registry = new()
    sub = registry.subscribe(SVC)
    assert sub.get_nowait().revision == store.revision == 0
    registry.register(inst())
    registry.update_service(inst(weight=1))
    registry.deregister(inst())
    registry.deregister(inst())  # nothing to delete: no write
    assert store.revision == 3
    assert [snap.revision for snap in pending(sub)] == [1, 2, 3]


# -- leases and keepalive ---------------------------------------------------------------------


def test_keepalive_keeps_instances_past_their_ttl(new):
    registry = new(ttl=1.0)
    registry.register(inst())
    first = registry.registration_state(inst()).last_refresh
    assert first is not None
    wait_until(lambda: (registry.registration_state(inst()).last_refresh or 0) > first + 1.5)
    assert ids(registry.list_services(SVC)) == ["i1"]
    assert counters(registry)["lease_losses"] == 0
    assert fyerreg_threads() == ["fyerreg-memory-expiry", "fyerreg-memory-keepalive"]


def test_suspended_keepalive_lets_instances_expire_and_resuming_reregisters(new, caplog):
    owner, watcher = new(ttl=TTL), new()
    sub = watcher.subscribe(SVC)
    owner.register(inst())
    next_snapshot(sub, lambda s: ids(s) == ["i1"])

    owner.suspend_keepalive()
    next_snapshot(sub, lambda s: not s)  # the store expired the lease
    assert not owner.registration_state(inst()).registered

    with caplog.at_level(logging.WARNING, logger="fyerreg.registry.memory"):
        owner.resume_keepalive()
        next_snapshot(sub, lambda s: ids(s) == ["i1"])
        # The keepalive thread logs once it has written the record, which the subscriber may see first.
        wait_until(lambda: [r for r in caplog.records if "re-registered" in r.getMessage()], timeout=5)
    state = owner.registration_state(inst())
    assert state.registered and state.reregistrations == 1
    assert counters(owner)["lease_losses"] == 1
    assert counters(owner)["reregistrations"] == 1
    lost = [r for r in caplog.records if "re-registered" in r.getMessage()]
    assert len(lost) == 1 and lost[0].instance_id == "i1" and lost[0].service == SVC


def test_expire_removes_now_and_the_owner_reregisters_on_its_next_keepalive(new):
    owner, watcher = new(ttl=TTL), new()
    owner.register(inst())
    sub = watcher.subscribe(SVC)
    assert ids(sub.get_nowait()) == ["i1"]
    assert watcher.expire(inst())
    assert not watcher.expire(inst("absent"))
    assert next_snapshot(sub) == []
    assert ids(next_snapshot(sub)) == ["i1"]
    assert owner.registration_state(inst()).reregistrations == 1


def test_expire_while_keepalive_is_suspended_stays_gone_until_resumed(new):
    owner, watcher = new(ttl=TTL), new()
    owner.register(inst())
    owner.suspend_keepalive()
    owner.expire(inst())
    sub = watcher.subscribe(SVC)
    assert sub.get_nowait() == []
    owner.resume_keepalive()
    assert ids(next_snapshot(sub)) == ["i1"]


def test_without_ttl_an_expired_instance_returns_on_update_service(new):
    owner = new()
    owner.register(inst())
    owner.store.expire(inst())
    assert owner.list_services(SVC) == []
    assert not owner.registration_state(inst()).registered
    owner.update_service(inst(weight=9))
    assert [i.weight for i in owner.list_services(SVC)] == [9]
    assert owner.registration_state(inst()).reregistrations == 1
    assert owner.registration_state(inst()).lease_id is None  # no leases without ttl
    assert fyerreg_threads() == []  # and no threads either


def test_update_service_refreshes_the_lease(new):
    owner = new(ttl=TTL)
    owner.register(inst())
    owner.suspend_keepalive()
    before = owner.registration_state(inst())
    assert before.lease_id is not None
    owner.update_service(inst(weight=2))
    after = owner.registration_state(inst())
    assert after.lease_id == before.lease_id
    assert (after.last_refresh or 0) >= (before.last_refresh or 0)


# -- takeover ---------------------------------------------------------------------------------


def test_taken_over_instance_is_not_fought_for(new, store, caplog):
    loser, winner = new(ttl=TTL), new(ttl=TTL)
    loser.register(inst(port=1))
    with caplog.at_level(logging.WARNING, logger="fyerreg.registry.memory"):
        winner.register(inst(port=2))
        # The loser's keepalive notices, says so once, and stops refreshing it.
        wait_until(lambda: any("no longer keeping it alive" in r.getMessage() for r in caplog.records))
    assert any(r.getMessage().startswith("Took over") and r.instance_id == "i1" for r in caplog.records)
    revision = store.revision
    assert not loser.registration_state(inst()).registered
    assert loser.registration_state(inst()).last_error == "taken over by another registry"
    assert [i.address for i in winner.list_services(SVC)] == ["127.0.0.1:2"]
    assert counters(winner)["takeovers"] == 1
    assert (counters(loser)["reregistrations"], counters(loser)["lease_losses"]) == (0, 0)
    assert store.revision == revision
    loser.deregister(inst())  # no longer ours: leaves the winner's record alone
    assert [i.address for i in winner.list_services(SVC)] == ["127.0.0.1:2"]


# -- unavailability -------------------------------------------------------------------------


def test_unavailable_registry_raises_and_keeps_subscriptions_at_their_last_state(new):
    writer, cut_off, witness = new(), new(), new()
    sub = cut_off.subscribe(SVC)
    witness_sub = witness.subscribe(SVC)
    writer.register(inst("a"))
    next_snapshot(sub, lambda s: ids(s) == ["a"])

    with cut_off.unavailable() as same:
        assert same is cut_off and not cut_off.available
        for call in (
            lambda: cut_off.register(inst("b")),
            lambda: cut_off.deregister(inst("a")),
            lambda: cut_off.update_service(inst("a")),
            lambda: cut_off.list_services(SVC),
            lambda: cut_off.subscribe(SVC),
        ):
            with pytest.raises(RegistryUnavailableError):
                call()
        writer.register(inst("b", port=2))
        writer.deregister(inst("a"))
        next_snapshot(witness_sub, lambda s: ids(s) == ["b"])
        assert pending(sub) == []  # nothing delivered while cut off
        cut_off.unsubscribe("other")  # local calls keep working
        cut_off.stats()

    assert cut_off.available
    caught_up = pending(sub)
    assert len(caught_up) == 1 and ids(caught_up[0] or []) == ["b"]
    assert ids(cut_off.list_services(SVC)) == ["b"]


def test_no_snapshot_on_return_when_nothing_changed(new):
    registry = new()
    sub = registry.subscribe(SVC)
    sub.get_nowait()
    registry.set_available(False)
    registry.set_available(False)
    registry.set_available(True)
    assert pending(sub) == []


def test_unavailable_owner_with_ttl_loses_its_instance_and_reregisters_on_return(new):
    owner, watcher = new(ttl=TTL), new()
    sub = watcher.subscribe(SVC)
    owner.register(inst())
    next_snapshot(sub, lambda s: ids(s) == ["i1"])
    owner.set_available(False)
    next_snapshot(sub, lambda s: not s)
    wait_until(lambda: owner.registration_state(inst()).last_error == "registry unavailable")
    owner.set_available(True)
    assert ids(next_snapshot(sub)) == ["i1"]
    assert owner.registration_state(inst()).reregistrations == 1


def test_unavailable_context_restores_on_error_and_close_still_deregisters(new):
    owner, watcher = new(), new()
    owner.register(inst())
    with pytest.raises(RuntimeError), owner.unavailable():
        raise RuntimeError("boom")
    assert owner.available
    owner.set_available(False)
    owner.close()
    assert watcher.list_services(SVC) == []


# -- stats, closing ----------------------------------------------------------------------------


def test_stats_count_what_happened(new):
    registry, watcher = new(), new()
    sub = watcher.subscribe(SVC, maxsize=1)
    for n in range(3):
        registry.register(inst(f"s{n}"))
    registry.deregister(inst("s0"))
    registry.deregister(inst("s0"))
    c = counters(registry)
    assert (c["registrations"], c["deregistrations"], c["lease_losses"], c["reregistrations"]) == (3, 1, 0, 0)
    assert registry.stats()["gauges"]["instances_registered"] == 2
    w = counters(watcher)
    assert w["snapshots_delivered"] == 5
    assert w["snapshots_conflated"] == 4
    sub.close()
    assert counters(watcher)["snapshots_delivered"] == 5  # kept after the subscription ended
    assert watcher.stats()["gauges"]["subscriptions"] == 0
    registry.close()
    assert counters(registry)["deregistrations"] == 3


def test_fault_injection_on_a_closed_registry_raises(new):
    registry = new()
    registry.close()
    for call in (registry.suspend_keepalive, registry.resume_keepalive, lambda: registry.set_available(False),
                 lambda: registry.expire(inst())):
        with pytest.raises(RegistryClosedError):
            call()


def test_expiry_thread_stops_with_the_last_registry_of_the_store(store):
    first, second = MemoryRegistry(store=store, ttl=5), MemoryRegistry(store=store, ttl=5)
    first.register(inst("a"))
    second.register(inst("b"))
    first.close()
    assert "fyerreg-memory-expiry" in fyerreg_threads()
    assert ids(second.list_services(SVC)) == ["b"]
    second.close()
    assert fyerreg_threads() == []
    with MemoryRegistry(store=store, ttl=TTL) as again:  # the store still enforces leases
        again.register(inst("c"))
        again.suspend_keepalive()
        wait_until(lambda: again.list_services(SVC) == [])
    assert fyerreg_threads() == []
