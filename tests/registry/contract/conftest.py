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
from typing import Any, Callable, Dict, Iterator, Sequence

import pytest

from fyerreg import MemoryRegistry, MemoryStore, Registry
from tests.helpers import Registries, no_fyerreg_thread_left


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Read at collection time, so an entry added anywhere in this module counts.
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize(
            "backend", [pytest.param(name, marks=spec.marks, id=name) for name, spec in BACKENDS.items()],
            indirect=True,
        )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Registries]:
    """A backend shared by the registries of one test, parametrized over BACKENDS."""
    spec = BACKENDS[request.param]
    b = Registries(spec.connect(request), request.param)
    with no_fyerreg_thread_left("every registry was closed"):
        try:
            yield b
        finally:
            b.close()

