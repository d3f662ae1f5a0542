"""Fixtures of the backend contract suite: every test runs once per entry of BACKENDS.

A backend plugs in with ONE entry: a name mapped to a ``_Spec`` whose ``connect(request)``
returns a factory ``(**kwargs) -> Registry``; all registries the factory makes during a
test share one backend (and nothing with other tests). For etcd that entry is::

    def _etcd(request: pytest.FixtureRequest) -> Callable[..., Registry]:
        from fyerreg.registry.etcd import EtcdRegistry
        endpoints = request.getfixturevalue("etcd_endpoints")
        return functools.partial(EtcdRegistry, endpoints=endpoints, namespace=f"contract-{uuid.uuid4().hex}")

    BACKENDS["etcd"] = _Spec(_etcd, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease)

``lose_lease`` ends an instance's lease from outside the registry (the lease-loss tests).
Capabilities a backend lacks are said by flags on its ``_Spec``, and only the tests that need
them skip it: ``ids_per_version=False``, its keys have no version; ``keeps_ids=False``, its
records do not keep what a writer chose (go-zero's layout: a key names its lease, the value the
address only): the tests marked ``chosen_ids`` are skipped there.

The suite itself only uses the public Registry API and waits by polling with a deadline,
so asynchronous backends pass it unchanged.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Callable, Dict, Iterator, Sequence

import pytest

from fyerreg import Instance, MemoryRegistry, MemoryStore, Registry
from tests.helpers import Registries, no_fyerreg_thread_left

LoseLease = Callable[[pytest.FixtureRequest, Registry, Instance], None]
"""Make the lease of ``instance``, registered by ``registry``, end now, from outside the registry."""


class _Spec:
    def __init__(self, connect: Callable[[pytest.FixtureRequest], Callable[..., Registry]],
                 marks: Sequence[Any] = (), *, lose_lease: LoseLease, keepalive: bool = True,
                 ids_per_version: bool = True, keeps_ids: bool = True) -> None:
        self.connect = connect
        self.marks = tuple(marks)
        self.lose_lease = lose_lease
        self.keepalive = keepalive  # False: nothing refreshes leases, a lost one returns on the next write
        self.ids_per_version = ids_per_version  # False: one id is one record whatever its version
        self.keeps_ids = keeps_ids


def _memory_lose_lease(request: pytest.FixtureRequest, registry: Registry, instance: Instance) -> None:
    assert isinstance(registry, MemoryRegistry)
    assert registry.store.expire(instance)


def _etcd_lose_lease(request: pytest.FixtureRequest, registry: Registry, instance: Instance) -> None:
    lease_id = registry.registration_state(instance).lease_id
    assert lease_id is not None
    request.getfixturevalue("etcd_client").revoke_lease(lease_id)


def _memory(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    return functools.partial(MemoryRegistry, store=MemoryStore())


def _memory_ttl(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    # With a lease and its keepalive thread, as etcd always has, and etcd's ttl here: a heartbeat
    # a second notices a takeover or a lost lease.
    return functools.partial(MemoryRegistry, store=MemoryStore(), ttl=3.0)


def _etcd(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry

    endpoints = request.getfixturevalue("etcd_endpoints")
    # ttl=3: a takeover is noticed by the old owner's next heartbeat, a second later.
    return functools.partial(EtcdRegistry, endpoints=endpoints, namespace=f"contract-{uuid.uuid4().hex}", ttl=3)


def _etcd_go_zero(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry
    from fyerreg.registry.layouts import GoZeroLayout

    endpoints = request.getfixturevalue("etcd_endpoints")
    root = f"contract-{uuid.uuid4().hex}/"  # go-zero keys have no namespace: a root of their own
    return functools.partial(EtcdRegistry, endpoints=endpoints, layout=GoZeroLayout(root=root), ttl=3)


def _etcd_proxy(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry

    endpoints = request.getfixturevalue("etcd_proxy_endpoints")
    return functools.partial(EtcdRegistry, endpoints=endpoints, namespace=f"contract-{uuid.uuid4().hex}", ttl=3)


def _etcd_naming(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry
    from fyerreg.registry.layouts import EtcdNamingLayout

    endpoints = request.getfixturevalue("etcd_endpoints")
    layout = EtcdNamingLayout(root=f"contract-{uuid.uuid4().hex}/")
    return functools.partial(EtcdRegistry, endpoints=endpoints, layout=layout, ttl=3)


def _etcd_kratos(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry
    from fyerreg.registry.layouts import KratosLayout

    endpoints = request.getfixturevalue("etcd_endpoints")
    layout = KratosLayout(f"/contract-{uuid.uuid4().hex}")
    return functools.partial(EtcdRegistry, endpoints=endpoints, layout=layout, ttl=3)


BACKENDS: Dict[str, _Spec] = {
    "memory": _Spec(_memory, lose_lease=_memory_lose_lease, keepalive=False),
    "memory-ttl": _Spec(_memory_ttl, lose_lease=_memory_lose_lease),
    "etcd": _Spec(_etcd, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease),
    # etcd's grpc-proxy in front of the same etcd (leases are lost from outside on etcd itself).
    "etcd-grpc-proxy": _Spec(_etcd_proxy, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease),
    # etcd's gRPC naming layout: <target>/<id> keys, the version in the record.
    "etcd-naming": _Spec(_etcd_naming, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease,
                         ids_per_version=False),
    # Kratos' layout: keys without versions, versions in the records.
    "etcd-kratos": _Spec(_etcd_kratos, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease,
                         ids_per_version=False),
    # go-zero's layout: instance ids read back are lease ids, records hold the address only.
    "etcd-go-zero": _Spec(_etcd_go_zero, marks=(pytest.mark.etcd,), lose_lease=_etcd_lose_lease, keeps_ids=False),
}


@pytest.fixture(scope="session")
def etcd_proxy_endpoints(etcd_endpoints: Any) -> Iterator[Any]:
    """``etcd grpc-proxy start`` in front of the session's etcd, for the whole session."""
    from fyerreg.testing import EtcdGrpcProxy

    with EtcdGrpcProxy(etcd_endpoints) as proxy:
        yield proxy.endpoints


class Backend(Registries):
    """One backend for one test: ``new()`` connects another registry to it; all are closed at teardown."""

    def __init__(self, name: str, factory: Callable[..., Registry], spec: _Spec,
                 request: pytest.FixtureRequest) -> None:
        super().__init__(factory, name)
        self._spec = spec
        self._request = request

    @property
    def ids_per_version(self) -> bool:
        """True when the same id in two versions is two instances (the keys have versions)."""
        return self._spec.ids_per_version

    def needs_ids_per_version(self) -> None:
        """Skip the test on a backend whose keys have no versions."""
        if not self.ids_per_version:
            pytest.skip(f"{self.name}: an id is one record whatever its version")

    @property
    def keepalive(self) -> bool:
        """True when registries refresh leases themselves (and so repair a lost one unasked)."""
        return self._spec.keepalive

    def lose_lease(self, registry: Registry, instance: Instance) -> None:
        """End the lease ``registry`` holds for ``instance`` now, as an expiry would."""
        self._spec.lose_lease(self._request, registry, instance)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chosen_ids: reads back the ids, versions and fields a writer chose "
                                       "(skipped on backends whose records do not keep them)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Read at collection time, so an entry added anywhere in this module counts.
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize(
            "backend", [pytest.param(name, marks=spec.marks, id=name) for name, spec in BACKENDS.items()],
            indirect=True,
        )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A backend shared by the registries of one test, parametrized over BACKENDS."""
    spec = BACKENDS[request.param]
    if not spec.keeps_ids and request.node.get_closest_marker("chosen_ids") is not None:
        pytest.skip(f"{request.param}'s records do not keep the ids, versions and fields a writer chose "
                    "(its keys name leases, its values hold the address only)")
    b = Backend(request.param, spec.connect(request), spec, request)
    with no_fyerreg_thread_left("every registry was closed"):
        try:
            yield b
        finally:
            b.close()

