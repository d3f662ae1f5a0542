"""The one background thread of a Discovery: subscribing again where a subscription was lost."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional

from .._threads import join_thread, start_thread
from ..errors import RegistryClosedError, RegistryError
from ..registry.base import Registry
from ..retry import Retry
from ._view import ServiceView

log = logging.getLogger("fyerreg.discovery")


class Resubscriber:
    """Retries ``registry.subscribe`` with backoff for every view that needs it.

    Started on first need, so a Discovery whose subscriptions never break runs no
    thread at all; :meth:`stop` ends and joins it. The backoff of each view is kept
    here; a view is only asked ``needs_subscription`` and handed the outcome
    (``attach`` a new subscription, or ``give_up`` once the registry is closed).
    """

    def __init__(
        self,
        registry: Registry,
        views: Callable[[], List[ServiceView]],
        *,
        retry: Retry,
        timeout: float,
    ) -> None:
        self._registry = registry
        self._views = views
        self._retry = retry
        self._timeout = timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._backoff: Dict[ServiceView, _Backoff] = {}  # only the thread touches it

    def wake(self) -> None:
        """Some view needs a subscription: start the thread if needed and let it look now."""
        with self._lock:
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = start_thread("discovery-resubscribe", self._run)
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop and join the thread; True when it has ended (or never ran)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        return thread is None or join_thread(thread, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            views = self._views()
            self._backoff = {view: self._backoff[view] for view in views if view in self._backoff}
            waits = [self._attempt(view) for view in views]
            pending = [w for w in waits if w is not None]
            self._wake.wait(min(pending) if pending else None)

    def _attempt(self, view: ServiceView) -> Optional[float]:
        """Try ``view`` if its turn has come; seconds until it should be tried again (None: done)."""
        backoff = self._backoff.get(view)
        now = time.monotonic()
        if backoff is not None and now < backoff.until:
            return backoff.until - now
        if self._stop.is_set():
            return None
        try:
            sub = self._registry.subscribe(view.service, view.version, timeout=self._timeout)
        except RegistryClosedError as exc:
            view.give_up(exc)
            return None
        except RegistryError as exc:
            if backoff is None:
                backoff = self._backoff[view] = _Backoff()
            backoff.attempts += 1
            wait = self._retry.wait_time(backoff.attempts)
            backoff.until = time.monotonic() + wait
            log.debug("subscribing to %s/%s failed (attempt %d): %s", view.service, view.version or "*",
                      backoff.attempts, exc, extra={"service": view.service, "version": view.version,
                                                    "attempt": backoff.attempts})
            return wait
        self._backoff.pop(view, None)
        if self._stop.is_set():
            sub.close()
            return None
        try:
            view.attach(sub)
        except Exception:  # a filter or balancer raised: the view holds the subscription and rebuilds at its next pick
            log.exception("subscribed to %s/%s again, but computing its candidates failed",
                          view.service, view.version or "*", extra={"service": view.service, "version": view.version})
            return None
        log.info("subscribed to %s/%s again", view.service, view.version or "*",
                 extra={"service": view.service, "version": view.version})
        return None


class _Backoff:
    """Failed subscribe attempts of one view since it last had a subscription."""

    __slots__ = ("attempts", "until")

    def __init__(self) -> None:
        self.attempts = 0
        self.until = 0.0
