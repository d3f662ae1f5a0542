"""The integrations' shared state against a real etcd: close() never waits for a connection in progress."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

from fyerreg.contrib._integration import Integration, Settings
from fyerreg.errors import RegistryError
from fyerreg.serving import InstanceSpec
from fyerreg.testing import EtcdServer
from tests.helpers import fyerreg_threads, wait_until

from .procs import some_thread_inside

pytestmark = pytest.mark.etcd

DIAL = 5.0


def test_close_does_not_wait_for_a_registry_still_connecting_to_a_hung_etcd(etcd_server: EtcdServer) -> None:
    settings = Settings(InstanceSpec("app", address="127.0.0.1:8000"), endpoints=etcd_server.endpoints,
                        registry_options={"dial_timeout": DIAL})
    integration = Integration(settings, register=False)
    errors: List[BaseException] = []

    def first_use() -> None:
        try:
            integration.registry  # noqa: B018 - connects
        except RegistryError as exc:
            errors.append(exc)

    etcd_server.pause()
    try:
        user = threading.Thread(target=first_use)
        user.start()
        wait_until(lambda: some_thread_inside("_connect"), timeout=5, message="the first use to connect")
        began = time.monotonic()
        integration.close()
        took = time.monotonic() - began
    finally:
        etcd_server.resume()
    user.join(DIAL + 10)
    assert took < 1.5, f"close() took {took:.1f}s while the registry connected (dial_timeout {DIAL:g}s)"
    assert len(errors) == 1  # unreachable in time, or closed meanwhile: either way no registry is left
    wait_until(lambda: fyerreg_threads() == [], timeout=10)
