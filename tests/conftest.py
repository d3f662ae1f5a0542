"""Shared pytest configuration. The etcd fixtures come from fyerreg's own plugin (entry point)."""

import os
import signal
from typing import Any, Iterator, List

import pytest

pytest_plugins = ["pytester"]

# Tests send SIGINT to child processes (Ctrl-C). A session started as a background job of a
# shell without job control inherits SIGINT ignored, and so would every child: Python then
# installs no KeyboardInterrupt handler. A handled signal is reset to its default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def procs() -> Iterator[List[Any]]:
    """A list to put started helper processes in (anything with ``close()``); each is closed after the test."""
    started: List[Any] = []
    yield started
    for proc in reversed(started):
        proc.close()


@pytest.fixture(autouse=True)
def _no_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own FYERREG_*, POD_IP and HOST_IP never configure a test (the FYERREG_TEST_* stay)."""
    for name in list(os.environ):
        if (name.startswith("FYERREG_") and not name.startswith("FYERREG_TEST_")) or name in ("POD_IP", "HOST_IP"):
            monkeypatch.delenv(name)
