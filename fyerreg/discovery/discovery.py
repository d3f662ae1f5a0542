"""``Discovery``: turn a Registry into "give me an instance of this service to call now"."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Set, Tuple, Union

from .. import _fork
from .._threads import join_thread, start_thread
from .._wakers import waker
from ..errors import RegistryClosedError, RegistryError, RegistryUnavailableError
from ..metrics import Metrics, Stats, StatsBuilder
from ..naming import Instance
from ..registry.base import Registry
from ..registry.subscription import Subscription
from ..retry import Retry
from ._persist import SnapshotFile
from ._pick import Pick, select_on
from ._resubscriber import Resubscriber
from ._view import ServiceView
from .balancer.base import BalancerSpec, make_balancer
from .filters import InstanceFilter
from .health import Ejection

__all__ = ["Discovery"]

log = logging.getLogger("fyerreg.discovery")

ViewKey = Tuple[str, Optional[str]]
DEFAULT_RESUBSCRIBE = Retry(max_tries=None, delay=0.5, backoff=2.0, max_delay=15.0, jitter=0.2)


def _any_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class Discovery:
    """Picks instances of services found through a :class:`~fyerreg.Registry`.

    The first use of a (service, version) subscribes to it once; after that, picks
    are served from local state kept current by the subscription, without blocking
    on the registry and without a thread per service. Only enabled instances with a
    weight above 0 are picked; then ``filters`` apply, and instances ejected by
    client-side outlier detection (``ejection``; None disables it) are skipped. When
    every candidate is ejected, picks go to them anyway (``panic``; False raises
    instead). When nothing can be picked,
    :class:`~fyerreg.errors.NoInstanceAvailableError` says which service and why.

    ``balancer`` is a registered name (see :func:`~fyerreg.discovery.balancer_names`),
    a :class:`Balancer` used as a template (each service gets a clone) or a factory.
    ``protect_empty`` (seconds): when the registry says a service that had instances
    has none, keep serving the last set that long before accepting it is empty.
    ``snapshot_file``: persist the last good set of every service there and serve it
    when the registry is unreachable at start. ``failure`` decides which exceptions
    raised inside :meth:`pick` count as failed calls (default: every ``Exception``).
    ``clock`` (monotonic seconds) is injectable for tests.

    Thread-safe. A context manager that closes on exit. :meth:`close` ends every
    subscription and the background thread; it does not close the registry.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        balancer: BalancerSpec = "round_robin",
        filters: Sequence[InstanceFilter] = (),
        ejection: Optional[Ejection] = Ejection(),
        panic: bool = True,
        protect_empty: Optional[float] = None,
        snapshot_file: Union[str, os.PathLike[str], None] = None,
        subscribe_timeout: float = 5.0,
        resubscribe: Retry = DEFAULT_RESUBSCRIBE,
        failure: Callable[[BaseException], bool] = _any_exception,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a fyerreg Registry, got {type(registry).__name__}")
        make_balancer(balancer)  # fail now on an unknown name, not at the first pick
        if isinstance(filters, (str, bytes)) or not all(callable(f) for f in filters):
            raise TypeError("filters must be a sequence of callables (see fyerreg.discovery.filters)")
        if ejection is not None and not isinstance(ejection, Ejection):
            raise TypeError("ejection must be an Ejection or None")
        if protect_empty is not None and protect_empty < 0:
            raise ValueError("protect_empty must be >= 0 seconds or None")
        if subscribe_timeout <= 0:
            raise ValueError("subscribe_timeout must be > 0")
        self._registry = registry
        self._balancer = balancer
        self._filters = tuple(filters)
        self._ejection = ejection
        self._panic = panic
        self._protect_empty = protect_empty or None
        self._store = SnapshotFile(os.fspath(snapshot_file)) if snapshot_file is not None else None
        self._subscribe_timeout = subscribe_timeout
        self._failure = failure
        self._clock = clock
        self._metrics = Metrics()
        self._views: Dict[ViewKey, ServiceView] = {}
        self._open_lock = threading.Lock()
        self._opening: Dict[ViewKey, _Opening] = {}
        self._openers: Set[threading.Thread] = set()  # first subscribes run for coroutines
        self._closed = False
        self._resubscribe = resubscribe
        self._resubscriber = Resubscriber(registry, self._views_needing_subscription, retry=resubscribe,
                                          timeout=subscribe_timeout)
        _fork.track(self)

    # -- picking -----------------------------------------------------------------------

    def select(
        self, service: str, version: Optional[str] = None, *, key: Optional[str] = None,
        exclude: Collection[Instance] = (), endpoint: Optional[str] = None,
    ) -> Instance:
        """One instance of ``service`` (``version``, or any version when None) to call now.

        ``key`` routes with key-based balancers (``consistent_hash``). ``exclude``: instances
        to avoid while others can be picked (those a retried call already failed on).
        ``endpoint``: only instances serving that named endpoint (see
        :meth:`Instance.endpoint <fyerreg.naming.Instance.endpoint>`). Raises
        :class:`~fyerreg.errors.NoInstanceAvailableError` when none can be picked.
        """
        return select_on(self._view(service, version), key, exclude, endpoint)

    async def aselect(
        self, service: str, version: Optional[str] = None, *, key: Optional[str] = None,
        exclude: Collection[Instance] = (), endpoint: Optional[str] = None,
    ) -> Instance:
        """:meth:`select` for coroutines: the first use of a service subscribes in a thread,
        without blocking the event loop; later picks are local. Cancelling the awaiting task
        leaves the subscribe to finish in its thread, for the next pick."""
        return select_on(await self._aview(service, version), key, exclude, endpoint)

    def pick(
        self, service: str, version: Optional[str] = None, *, key: Optional[str] = None,
        exclude: Collection[Instance] = (), endpoint: Optional[str] = None,
    ) -> Pick:
        """``with discovery.pick(service) as inst:`` (or ``async with``) selects an instance and
        reports on the call.

        The block's duration is its latency; an exception escaping it (as judged by
        ``failure``) marks the call failed and is re-raised; a cancelled task's call is
        not reported at all. Calls in flight are counted for the ``least_requests`` and ``p2c``
        balancers. ``async with`` picks as :meth:`aselect` does.
        """
        return Pick(self, service, version, key, exclude, endpoint)

    def report(self, instance: Instance, *, latency: float, error: Union[bool, BaseException, None] = None) -> None:
        """Tell the balancer and outlier detection how a call to ``instance`` went.

        For callers that cannot use :meth:`pick`. ``latency`` is in seconds; ``error``
        is the exception raised (or True) for a failed call, None or False otherwise.
        """
        failed = self._failed(error)
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency must be a number of seconds >= 0, got {latency!r}")
        for view in self._views_of(instance):
            view.observe(instance, float(latency), failed)

    def instances(self, service: str, version: Optional[str] = None) -> List[Instance]:
        """The instances picks of ``service`` are drawn from now (enabled, filtered, not ejected)."""
        return self._view(service, version).candidates()

    def _failed(self, error: Union[bool, BaseException, None]) -> bool:
        if error is None or error is False:
            return False
        if error is True:
            return True
        if isinstance(error, BaseException):
            return bool(self._failure(error))
        raise TypeError(f"error must be an exception, a bool or None, got {type(error).__name__}")

    def _views_of(self, instance: Instance) -> List[ServiceView]:
        views = []
        for key in ((instance.service, instance.version), (instance.service, None)):
            view = self._views.get(key)
            if view is not None and view.knows(instance):
                views.append(view)
        return views

    # -- views -------------------------------------------------------------------------

    def _view(self, service: str, version: Optional[str]) -> ServiceView:
        """The view of (``service``, ``version``), opened on first use."""
        if self._closed:
            raise RegistryClosedError("Discovery is closed")
        view = self._views.get((service, version))
        if view is None:
            view = self._open(service, version)
        return view

    def _open(self, service: str, version: Optional[str]) -> ServiceView:
        # The first thread asking for a new (service, version) subscribes, without any lock
        # held, so picks of other services never wait for it; others asking meanwhile wait
        # for that same subscribe instead of opening their own.
        view, opening, first = self._claim(service, version)
        if view is not None:
            return view
        if first:
            return self._subscribe_first(service, version, opening)
        opening.wait()
        return self._opened(service, version, opening)

    async def _aview(self, service: str, version: Optional[str]) -> ServiceView:
        """:meth:`_view` for a coroutine: a first subscribe runs in a thread, the loop never blocks."""
        view = self._views.get((service, version))
        if view is not None and not self._closed:
            return view
        view, opening, first = self._claim(service, version)
        if view is not None:
            return view
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        opening.add_callback(waker(loop, woken))
        if first:
            self._start_opener(service, version, opening)
        await woken  # cancelled: the subscribe goes on in its thread and serves later picks
        return self._opened(service, version, opening)

    def _claim(self, service: str, version: Optional[str]) -> Tuple[Optional[ServiceView], _Opening, bool]:
        """The open view, or the opening in progress for it and whether the caller must do it."""
        key = (service, version)
        with self._open_lock:
            if self._closed:
                raise RegistryClosedError("Discovery is closed")
            view = self._views.get(key)
            opening = self._opening.get(key)
            first = view is None and opening is None
            if opening is None:
                opening = _Opening()
                if first:
                    self._opening[key] = opening
        return view, opening, first

    def _subscribe_first(self, service: str, version: Optional[str], opening: _Opening) -> ServiceView:
        try:
            view = self._subscribe_view(service, version)
        except BaseException as exc:
            opening.finish(exc)
            raise
        finally:
            with self._open_lock:
                self._opening.pop((service, version), None)
        opening.finish()
        return view

    def _opened(self, service: str, version: Optional[str], opening: _Opening) -> ServiceView:
        """The view another caller's subscribe (``opening``, finished) opened, or what it raised."""
        view = self._views.get((service, version))
        if view is not None:
            return view
        error = opening.error
        raise error if error is not None else RegistryClosedError("Discovery is closed")

    def _start_opener(self, service: str, version: Optional[str], opening: _Opening) -> None:
        def run() -> None:
            try:
                self._subscribe_first(service, version, opening)
            except BaseException:
                pass  # delivered to every waiter through ``opening``
            finally:
                with self._open_lock:
                    self._openers.discard(threading.current_thread())

        with self._open_lock:
            self._openers.add(start_thread(f"open-{service}", run))

    def _subscribe_view(self, service: str, version: Optional[str]) -> ServiceView:
        view = ServiceView(
            service, version,
            balancer=make_balancer(self._balancer),
            filters=self._filters,
            ejection=self._ejection,
            panic=self._panic,
            protect_empty=self._protect_empty,
            store=self._store,
            clock=self._clock,
            metrics=self._metrics,
            on_lost=lambda _view: self._resubscriber.wake(),
        )
        try:
            sub: Optional[Subscription] = self._registry.subscribe(service, version, timeout=self._subscribe_timeout)
        except RegistryUnavailableError as exc:
            view.start_cold(exc)
            sub = None
        with self._open_lock:
            closed = self._closed
            if not closed:
                # Kept before attaching: attach() runs the filters and the balancer, and when
                # they raise, the next pick must find this view (and its subscription) again.
                self._views[(service, version)] = view
        if closed:
            if sub is not None:
                sub.close()
            raise RegistryClosedError("Discovery is closed")
        if sub is None:
            self._resubscriber.wake()
            return view
        view.attach(sub)
        if self._closed:  # close() ran meanwhile and may have closed the view before the attach
            view.close()
        return view

    def _views_needing_subscription(self) -> List[ServiceView]:
        return [v for v in list(self._views.values()) if v.needs_subscription]

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self, *, timeout: Optional[float] = None) -> None:
        """End every subscription and stop the background thread (idempotent).

        ``timeout`` bounds the wait for the thread (default: ``subscribe_timeout`` + 1 s).
        """
        with self._open_lock:
            if self._closed:
                return
            self._closed = True
            views = list(self._views.values())
        wait = self._subscribe_timeout + 1.0 if timeout is None else timeout
        deadline = time.monotonic() + wait
        if not self._resubscriber.stop(wait):
            log.warning("the discovery resubscribe thread did not stop in time")
        with self._open_lock:
            openers = list(self._openers)
        for thread in openers:
            join_thread(thread, max(0.0, deadline - time.monotonic()))
        for view in views:
            try:
                view.close()
            except RegistryError as exc:
                log.warning("closing the subscription to %s/%s failed: %s", view.service, view.version or "*",
                            exc, extra={"service": view.service, "version": view.version})

    def _after_fork(self) -> None:
        """In a forked child: a fresh (not yet started) resubscribe thread (every lock was
        renewed before this, see :mod:`fyerreg._fork`).

        A registry that ended its subscriptions at the fork (the etcd one does) makes each
        view subscribe again on its next pick; until then it serves the inherited set.
        """
        self._opening = {}  # first subscribes of the parent's threads, which never finish here
        self._openers = set()
        self._resubscriber = Resubscriber(self._registry, self._views_needing_subscription,
                                          retry=self._resubscribe, timeout=self._subscribe_timeout)

    def __enter__(self) -> Discovery:
        if self._closed:
            raise RegistryClosedError("Discovery is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> Stats:
        """Counters per service (``discovery_snapshots``, ``discovery_ejections``, ``discovery_returns``,
        ``discovery_empty_protections``) and per instance (``instance_picks``, ``instance_calls``,
        ``instance_errors``, ``instance_ejections``); gauges per service (``service_revision``,
        ``service_stale``, ``service_subscribed``, ``service_candidates``,
        ``service_protecting_empty``) and per instance (``instance_enabled``, ``instance_weight``,
        ``instance_ejected``). Series are labelled with ``service`` and ``version``
        (``"*"``: any), per instance also ``instance_id`` and ``address``."""
        stats = StatsBuilder(self._metrics.snapshot())
        for view in list(self._views.values()):
            view.add_stats(stats)
        return stats.build()

    def describe(self) -> Dict[str, Any]:
        """Each service's state for a reader: revision, staleness, whether subscribed, candidates,
        panic, empty-set protection, why nothing is available; per instance its record and counts."""
        return {"services": [view.describe() for view in list(self._views.values())]}

    def __repr__(self) -> str:
        return f"<Discovery services={len(self._views)} closed={self._closed}>"


class _Opening:
    """One first subscribe to a (service, version) in progress, awaited by the other callers asking for it."""

    __slots__ = ("_done", "error", "_callbacks", "_lock")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: Optional[BaseException] = None
        self._callbacks: List[Callable[[], None]] = []
        self._lock = threading.Lock()

    def finish(self, error: Optional[BaseException] = None) -> None:
        self.error = error
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the finishing thread) once the subscribe is done; now if it is."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self) -> None:
        """Wait for the subscribe (bounded by its own timeout)."""
        self._done.wait()
