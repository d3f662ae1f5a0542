"""The spare lease: a registry that has registered keeps one lease granted ahead, so that its next
registration is a single write; a spare too old is not used; close() revokes the unused one."""

from __future__ import annotations

import time
from typing import Optional

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import fyerreg_threads, wait_until

from .support import make_instance

pytestmark = pytest.mark.etcd


def spare_of(registry: EtcdRegistry) -> Optional[int]:
    spare = registry._writer.spare
    assert spare is not None
    held = spare._spare
    return None if held is None else held[0]


def test_the_next_registration_takes_the_lease_granted_ahead(registries, etcd_client):
    registry = registries.new(ttl=30)
    assert "fyerreg-spare-lease" not in fyerreg_threads()  # nothing granted before the first registration
    registry.register(make_instance("first"))
    spare = wait_until(lambda: spare_of(registry), timeout=5, message="a spare lease is granted")
    assert etcd_client.get_lease_info(spare).TTL > 0
    second = make_instance("second")
    registry.register(second)
    assert registry.registration_state(second).lease_id == spare
    replacement = wait_until(lambda: spare_of(registry), timeout=5, message="the spare is replaced")
    assert replacement != spare
    registry.close()
    assert etcd_client.get_lease_info(replacement).TTL == -1  # revoked, not left to expire
    assert "fyerreg-spare-lease" not in fyerreg_threads()


def test_a_spare_older_than_a_third_of_the_ttl_is_not_used(registries, etcd_client):
    registry = registries.new(ttl=3)
    registry.register(make_instance("first"))
    spare = wait_until(lambda: spare_of(registry), timeout=5, message="a spare lease is granted")
    time.sleep(1.1)  # past ttl/3: its first heartbeat could come too late for what is left of it
    late = make_instance("late")
    registry.register(late)
    assert registry.registration_state(late).lease_id != spare
    assert registry.registration_state(late).registered
