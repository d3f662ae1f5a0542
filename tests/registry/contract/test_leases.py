"""Contract: a lost lease is repaired by its owner; a takeover is not fought for; both counted alike."""

from __future__ import annotations

import logging

import pytest

from fyerreg import NotRegisteredError
from tests.helpers import ids, next_snapshot, wait_until
from tests.registry.contract.support import SERVICE, make_instance, unstamped

pytestmark = pytest.mark.chosen_ids  # every test here reads back the ids it chose


def _counters(registry):
    return registry.stats()["counters"]


def test_lost_lease_is_registered_again_by_its_owner(backend):
    owner, watcher = backend.new(), backend.new()
    inst = make_instance("lost", metadata={"k": "v"})
    owner.register(inst)
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["lost"])
    lost = owner.registration_state(inst).lease_id

    backend.lose_lease(owner, inst)
    next_snapshot(sub, lambda s: s == [])
    if not backend.keepalive:
        wait_until(lambda: not owner.registration_state(inst).registered)
        owner.update_service(inst)  # nothing refreshes the lease: the next write repairs it
    back = next_snapshot(sub, lambda s: ids(s) == ["lost"])
    assert unstamped(list(back)) == [inst]

    state = wait_until(lambda: (lambda s: s if s.reregistrations else None)(owner.registration_state(inst)),
                       message="the re-registration is counted")
    assert state.registered and state.reregistrations == 1
    if lost is not None:
        assert state.lease_id != lost
    assert (_counters(owner)["lease_losses"], _counters(owner)["reregistrations"]) == (1, 1)
    assert ids(watcher.list_services(SERVICE)) == ["lost"]


def test_lost_lease_is_registered_again_on_update_service(backend):
    owner = backend.new()
    inst = make_instance("updated")
    owner.register(inst)
    backend.lose_lease(owner, inst)
    owner.update_service(inst.replace(weight=9))
    assert [i.weight for i in owner.list_services(SERVICE)] == [9]
    assert owner.registration_state(inst).registered
    assert _counters(owner)["lease_losses"] == 1


def test_taken_over_instance_stays_with_the_new_owner_through_its_lease_loss(backend):
    loser, winner, watcher = backend.new(), backend.new(), backend.new()
    old = make_instance("taken", port=1)
    new = old.replace(address="127.0.0.1:2")
    loser.register(old)
    winner.register(new)
    sub = watcher.subscribe(SERVICE)
    assert unstamped(list(next_snapshot(sub, lambda s: ids(s) == ["taken"]))) == [new]
    wait_until(lambda: not loser.registration_state(old).registered, message="the old owner lets go")
    assert loser.registration_state(old).last_error == "taken over by another registry"
    assert _counters(winner)["takeovers"] == 1
    assert _counters(loser)["takeovers"] == 0

    backend.lose_lease(winner, new)
    next_snapshot(sub, lambda s: s == [])
    if not backend.keepalive:
        winner.update_service(new)
    assert unstamped(list(next_snapshot(sub, lambda s: ids(s) == ["taken"]))) == [new]
    wait_until(lambda: winner.registration_state(new).reregistrations == 1)
    # The old owner never writes it back: it knows it lost the instance.
    assert not loser.registration_state(old).registered
    assert (_counters(loser)["lease_losses"], _counters(loser)["reregistrations"]) == (0, 0)
    with pytest.raises(NotRegisteredError):
        loser.update_service(old)
    assert unstamped(watcher.list_services(SERVICE)) == [new]


def test_a_takeover_is_logged_alike_on_every_backend(backend, caplog):
    first, second = backend.new(), backend.new()
    old = make_instance("logged", port=1)
    first.register(old)
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        second.register(old.replace(address="127.0.0.1:2"))
    warning = next(r for r in caplog.records if "took over" in r.getMessage().lower())
    assert (warning.levelno, warning.service, warning.instance_id, warning.address) == (
        logging.WARNING, SERVICE, "logged", "127.0.0.1:2")
    # Lease ids are hex strings in the extras, as in the message and as etcdctl prints them.
    assert isinstance(warning.lease_id, str) and isinstance(warning.previous_lease_id, str)
    assert warning.lease_id in warning.getMessage() and warning.previous_lease_id in warning.getMessage()
    assert int(warning.lease_id, 16) != int(warning.previous_lease_id, 16)
