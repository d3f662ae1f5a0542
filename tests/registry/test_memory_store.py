"""MemoryStore as an in-process etcd: what the shared watch code relies on."""

from __future__ import annotations

from fyerreg import Instance, MemoryRegistry, MemoryStore
from fyerreg.registry.kv import _watch
from tests.helpers import ids, pending


def _inst(id: str) -> Instance:
    return Instance(id=id, service="s", version="v1", address="127.0.0.1:1")


def test_a_write_between_a_subscriptions_read_and_its_watch_still_reaches_it(monkeypatch):
    store = MemoryStore()
    with MemoryRegistry(store=store) as writer, MemoryRegistry(store=store) as reader:
        read = _watch.PrefixWatch.load

        def read_then_another_thread_writes(self, *, deadline):
            snapshot = read(self, deadline=deadline)
            writer.register(_inst("late"))  # lands after the read, before the watch
            return snapshot

        monkeypatch.setattr(_watch.PrefixWatch, "load", read_then_another_thread_writes)
        sub = reader.subscribe("s")
        monkeypatch.undo()
        assert [ids(snap or []) for snap in pending(sub)] == [[], ["late"]]
        writer.deregister(_inst("late"))
        last = pending(sub)[-1]
        assert last is not None and ids(last) == []


def test_revoking_a_lease_without_keys_writes_nothing():
    store = MemoryStore()
    with MemoryRegistry(store=store, ttl=30) as owner, MemoryRegistry(store=store, ttl=30) as other:
        owner.register(_inst("a"))
        other.register(_inst("a"))  # takes the key; the owner's lease is left with none
        revision = store.revision
        owner.deregister(_inst("a"))  # revokes that lease: no write
        assert store.revision == revision
        assert ids(other.list_services("s")) == ["a"]


def test_close_while_unavailable_deregisters_and_counts_it(caplog):
    store = MemoryStore()
    with MemoryRegistry(store=store) as watcher:
        owner = MemoryRegistry(store=store)
        owner.register(_inst("a"))
        owner.set_available(False)
        owner.close()
        assert watcher.list_services("s") == []
        assert owner.stats()["counters"]["deregistrations"] == 1
        assert not [r for r in caplog.records if "could not deregister" in r.getMessage()]
