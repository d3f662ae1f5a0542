"""Objects that renew their locks, threads and connections in a forked child.

A child process inherits a copy of every object but none of the threads that served
them, and locks those threads may have held stay locked forever. gRPC channels are not
fork-safe either. Objects registered with :func:`track` get ``_after_fork()`` called in
each child, before any other code of the child runs; there they drop what belongs to the
parent and prepare to start over lazily, on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable, Dict, Optional

logger = logging.getLogger("fyerreg.fork")

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


_LOCK_TYPES: Dict[type, Callable[[], Any]] = {type(threading.Lock()): threading.Lock,
                                             type(threading.RLock()): threading.RLock}


def fresh_lock_like(value: Any) -> Optional[Any]:
    """A new, unheld lock of the same kind when ``value`` is a Lock or RLock, else None."""
    factory = _LOCK_TYPES.get(type(value))
    return factory() if factory is not None else None


def renew_locks(*objs: Any) -> None:
    """Replace every Lock/RLock attribute of ``objs`` with a fresh one (in a forked child,
    where a lock held by a parent's thread at the fork would stay held forever)."""
    for obj in objs:
        if obj is None or not hasattr(obj, "__dict__"):
            continue
        for name, value in list(vars(obj).items()):
            lock = fresh_lock_like(value)
            if lock is not None:
                setattr(obj, name, lock)


def track(obj: Any) -> None:
    """Call ``obj._after_fork()`` in every child forked while ``obj`` is alive."""
    _tracked.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_tracked):
        try:
            obj._after_fork()
        except Exception:  # a failing object must not break the others, nor the fork
            logger.exception("resetting %r after fork failed", obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
