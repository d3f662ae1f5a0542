"""Fixtures of the backend contract suite: every test runs once per entry of BACKENDS.

A backend plugs in with ONE entry: a name mapped to a ``_Spec`` whose ``connect(request)``
returns a factory ``(**kwargs) -> Registry``; all registries the factory makes during a
test share one backend (and nothing with other tests). For etcd that entry is::

    def _etcd(request: pytest.FixtureRequest) -> Callable[..., Registry]:
        from fyerreg.registry.etcd import EtcdRegistry
        endpoints = request.getfixturevalue("etcd_endpoints")
        return functools.partial(EtcdRegistry, endpoints=endpoints, namespace=f"contract-{uuid.uuid4().hex}")

    BACKENDS["etcd"] = _Spec(_etcd, marks=(pytest.mark.etcd,))  # anywhere in this module

The suite itself only uses the public Registry API and waits by polling with a deadline,
so asynchronous backends pass it unchanged.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Callable, Dict, Iterator, List, Sequence

import pytest

from fyerreg import MemoryRegistry, MemoryStore, Registry
from tests.helpers import no_fyerreg_thread_left


class _Spec:
    def __init__(self, connect: Callable[[pytest.FixtureRequest], Callable[..., Registry]],
                 marks: Sequence[Any] = ()) -> None:
        self.connect = connect
        self.marks = tuple(marks)


def _memory(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    return functools.partial(MemoryRegistry, store=MemoryStore())


def _memory_ttl(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    # With a lease and its keepalive thread, as etcd always has; long enough never to expire here.
    return functools.partial(MemoryRegistry, store=MemoryStore(), ttl=30.0)


def _etcd(request: pytest.FixtureRequest) -> Callable[..., Registry]:
    from fyerreg.registry.etcd import EtcdRegistry

    endpoints = request.getfixturevalue("etcd_endpoints")
    # ttl=3: a takeover is noticed by the old owner's next heartbeat, a second later.
    return functools.partial(EtcdRegistry, endpoints=endpoints, namespace=f"contract-{uuid.uuid4().hex}", ttl=3)


BACKENDS: Dict[str, _Spec] = {
    "memory": _Spec(_memory),
    "memory-ttl": _Spec(_memory_ttl),
    "etcd": _Spec(_etcd, marks=(pytest.mark.etcd,)),
}


class Backend:
    """One backend for one test: ``new()`` connects another registry to it; all are closed at teardown."""

    def __init__(self, name: str, factory: Callable[..., Registry]) -> None:
        self.name = name
        self._factory = factory
        self._registries: List[Registry] = []

    def new(self, **kwargs: Any) -> Registry:
        """A fresh registry connected to this test's backend."""
        registry = self._factory(**kwargs)
        self._registries.append(registry)
        return registry

    def close(self) -> None:
        for registry in reversed(self._registries):
            registry.close()

    def __repr__(self) -> str:
        return f"<Backend {self.name}>"


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
    b = Backend(request.param, spec.connect(request))
    with no_fyerreg_thread_left("every registry was closed"):
        try:
            yield b
        finally:
            b.close()

