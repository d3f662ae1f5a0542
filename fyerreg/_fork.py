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
import weakref
from typing import Any

logger = logging.getLogger("fyerreg.fork")

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


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
