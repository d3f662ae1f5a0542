"""Fixtures for the discovery tests: a registry backend and a fake clock."""

from __future__ import annotations

import threading
from typing import Iterator, Type

import pytest

from fyerreg import Registry

from .fake import FakeRegistry
from .util import FakeClock

BACKEND: Type[Registry] = FakeRegistry


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = BACKEND()
    yield reg
    reg.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.name.startswith("fyerreg-discovery")]
    assert not leaked, f"threads left running: {leaked}"
