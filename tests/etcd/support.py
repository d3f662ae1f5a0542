"""Helpers of the etcd backend tests."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List

from fyerreg import Instance, Snapshot, Subscription

SERVICE = "etcd-svc"


def make_instance(id: str, *, version: str = "v1", service: str = SERVICE, port: int = 8000,
                  **fields: Any) -> Instance:
    """A valid instance of the tests' service."""
    return Instance(id=id, service=service, version=version, address=f"127.0.0.1:{port}", **fields)


def ids(instances: List[Instance]) -> List[str]:
    return [inst.id for inst in instances]


def next_snapshot(sub: Subscription, predicate: Callable[[Snapshot], bool] = lambda s: True,
                  timeout: float = 10.0) -> Snapshot:
    """The first snapshot from ``sub`` satisfying ``predicate``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching snapshot within {timeout}s")
        try:
            item = sub.get(timeout=left)
        except Exception:
            raise AssertionError(f"no matching snapshot within {timeout}s") from None
        if item is None:
            raise AssertionError("subscription ended")
        if predicate(item):
            return item


def library_threads() -> List[str]:
    """Names of the live threads fyerreg started."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("fyerreg-") and t.is_alive())


def child_env() -> Dict[str, str]:
    """The environment for a Python child that imports this checkout's fyerreg."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


PYTHON = sys.executable

