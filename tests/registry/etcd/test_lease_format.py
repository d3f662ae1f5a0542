"""A lease id reads the same everywhere: registration_state(), the logs and etcdctl all write hex."""

from __future__ import annotations

import logging

import pytest

from .support import make_instance

pytestmark = pytest.mark.etcd


def test_registration_state_shows_the_lease_as_the_log_does(registries, caplog: pytest.LogCaptureFixture) -> None:
    registry = registries.new(ttl=5)
    inst = make_instance("a")
    with caplog.at_level(logging.INFO, logger="fyerreg"):
        registry.register(inst)
    state = registry.registration_state(inst)
    assert state.lease_id is not None and state.lease_id > 9  # a lease id whose hex differs from decimal
    lease = f"{state.lease_id:x}"
    [logged] = [r for r in caplog.records if "registered" in r.getMessage() and lease in r.getMessage()]
    assert logged.__dict__["lease_id"] == lease
    assert f"lease_id='{lease}'" in repr(state)
    assert str(state.lease_id) not in repr(state)
