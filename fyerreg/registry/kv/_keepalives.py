"""The keepalive threads one registration started, each with its stop event, and when they beat."""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Tuple

from ..._threads import join_thread, start_thread

__all__ = ["KeepaliveThreads", "heartbeat_wait"]

HEARTBEAT_GRID = 1.0
"""Seconds: the heartbeats of a process fall on multiples of this on its monotonic clock."""


def heartbeat_wait(interval: float) -> float:
    """Seconds to wait for the next heartbeat: at most ``interval``, ending on the process's grid.

    Registrations whose heartbeats fall due within one grid step beat together, so gRPC's
    and etcd's threads wake once for a batch of renewals instead of once for each: at a
    thousand registrations, less than half the CPU of renewals spread at random. A beat is
    at most a quarter of ``interval`` early, never late.
    """
    grid = min(HEARTBEAT_GRID, interval / 4.0)
    now = time.monotonic()
    return max(0.0, ((now + interval) // grid) * grid - now)



class KeepaliveThreads:
    """Every keepalive thread started for one registration; all but the last were stopped by a
    takeover (registering again starts a new one) and may still be ending."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._started: List[Tuple[threading.Event, threading.Thread]] = []

    def start(self, run: Callable[[threading.Event], None]) -> None:
        """Start ``run(stop)`` on a new thread named ``name``."""
        stop = threading.Event()
        with self._lock:
            self._started.append((stop, start_thread(self._name, run, stop)))

    def signal_stop(self) -> None:
        """Tell every thread started to stop."""
        with self._lock:
            for stop, _ in self._started:
                stop.set()

    def join(self, timeout: float) -> bool:
        """Stop every thread started and wait for it to end; True when all have."""
        self.signal_stop()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [thread for _, thread in self._started]
        return all([join_thread(thread, max(0.0, deadline - time.monotonic())) for thread in threads])
