"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate!r}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process, read from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def process_cmdline(pid: int) -> Optional[List[str]]:
    """The argv of ``pid`` from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def etcd_pids(client_url_fragment: str = "") -> List[int]:
    """Pids of live etcd processes whose command line mentions ``client_url_fragment``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = process_cmdline(int(entry))
        if not argv or os.path.basename(argv[0]) != "etcd":
            continue
        if client_url_fragment in " ".join(argv) and process_alive(int(entry)):
            pids.append(int(entry))
    return pids
