"""Feeding the board: one subscription per service, and a watch of the namespace for new services.

Nothing here reads etcd on a timer: every change comes from a watch. Each service is
followed by its own thread (``fyerreg-ui-follow-<service>``) blocked on its
subscription; the namespace's root is watched by :class:`~fyerreg.registry.etcd.namespace.ServiceNames`
so a service registered after the start gets its subscription at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Set

from .._threads import join_thread, start_thread
from ..errors import InvalidInstanceError, RegistryClosedError, RegistryError
from ..registry.subscription import Subscription
from ._state import Board

__all__ = ["Follower"]

log = logging.getLogger("fyerreg.ui")


class Follower:
    """Keeps ``board`` current with every service of ``registry``'s namespace until :meth:`close`."""

    def __init__(self, registry: Any, board: Board) -> None:
        self.registry = registry
        self.board = board
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: Dict[str, threading.Thread] = {}
        self._subs: Dict[str, Subscription] = {}
        self._names: Optional[Any] = None
        self._unread: Set[str] = set()  # services there at the start whose first snapshot is not shown yet
        self._read = threading.Condition(self._lock)
        self._wait = float(getattr(getattr(registry, "options", None), "dial_timeout", 5.0))

    def start(self) -> None:
        """Read the services there now and follow each; raises a RegistryError when etcd does not answer.

        Returns once each of them shows its instances (or after the registry's dial
        timeout: the rest show theirs as they come).
        """
        from ..registry.etcd.namespace import ServiceNames

        self._names = ServiceNames(self.registry, lambda name: self._follow(name, baseline=False),
                                   on_connection=self.board.set_connected, thread_name="ui-names")
        names = sorted(self._names.start(timeout=self._wait))
        with self._lock:
            self._unread.update(names)
        for name in names:
            self._follow(name, baseline=True)
        with self._read:
            self._read.wait_for(lambda: not self._unread or self._stop.is_set(), self._wait)

    def _follow(self, name: str, *, baseline: bool) -> None:
        with self._lock:
            if self._stop.is_set() or name in self._threads:
                return
            self.board.add_service(name)
            self._threads[name] = start_thread(f"ui-follow-{name}", self._run, name, baseline)

    def _subscribe(self, name: str) -> Optional[Subscription]:
        failures = 0
        retry = getattr(self.registry._client, "retry", None)
        while not self._stop.is_set():
            try:
                sub: Subscription = self.registry.subscribe(name, timeout=self._wait)
            except RegistryClosedError:
                return None
            except InvalidInstanceError as exc:  # a key segment no subscription accepts: nothing to retry
                log.warning("cannot follow service %r: %s", name, exc, extra={"service": name})
                return None
            except RegistryError as exc:
                failures += 1
                if failures == 1:
                    log.warning("cannot follow service %s yet: %s", name, exc, extra={"service": name})
                self._stop.wait(retry.wait_time(failures) if retry is not None else 1.0)
                continue
            with self._lock:
                if self._stop.is_set():
                    sub.close()
                    return None
                self._subs[name] = sub
            return sub
        return None

    def _run(self, name: str, baseline: bool) -> None:
        sub = self._subscribe(name)
        if sub is None:
            return
        first = True
        for snapshot in sub:
            self.board.apply(name, snapshot, baseline=baseline and first)
            if first:
                with self._read:
                    self._unread.discard(name)
                    self._read.notify_all()
            first = False

    def followed(self) -> List[str]:
        """The services followed."""
        with self._lock:
            return sorted(self._threads)

    def close(self, timeout: float) -> None:
        """End every subscription and the namespace watch; join their threads (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._read:
            self._read.notify_all()
        if self._names is not None:
            self._names.stop(max(deadline - time.monotonic(), 0.05))
        with self._lock:
            subs = list(self._subs.values())
            threads = list(self._threads.values())
        for sub in subs:
            sub.close()
        for thread in threads:
            if not join_thread(thread, max(deadline - time.monotonic(), 0.05)):
                log.warning("thread %s did not end at close", thread.name)
