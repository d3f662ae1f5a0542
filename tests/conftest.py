"""Shared pytest configuration. The etcd fixtures come from fyerreg's own plugin (entry point)."""

from typing import Any, Iterator, List

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def procs() -> Iterator[List[Any]]:
    """A list to put started helper processes in (anything with ``close()``); each is closed after the test."""
    started: List[Any] = []
    yield started
    for proc in reversed(started):
        proc.close()
