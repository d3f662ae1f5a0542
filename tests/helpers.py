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


def etcd_pids(client_url: str) -> List[int]:
    """Pids of live etcd processes listening for clients on exactly ``client_url``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = process_cmdline(int(entry))
        if argv and os.path.basename(argv[0]) == "etcd" and client_url in argv and process_alive(int(entry)):
            pids.append(int(entry))
    return pids


def child_pids(parent: int) -> List[int]:
    """Pids of the live children of ``parent``, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            children.append(int(entry))
    return children
