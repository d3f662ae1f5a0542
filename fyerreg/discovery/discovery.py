"""``Discovery``: turn a Registry into "give me an instance of this service to call now"."""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple, Type, Union

from .. import _fork
from ..errors import RegistryClosedError, RegistryError, RegistryUnavailableError
from ..metrics import Metrics, Stats, StatsBuilder
from ..naming import Instance
from ..registry.base import Registry
from ..registry.subscription import Subscription
from ..retry import Retry
from ._persist import SnapshotFile
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
        self._closed = False
        self._resubscribe = resubscribe
        self._resubscriber = Resubscriber(registry, self._views_needing_subscription, retry=resubscribe,
                                          timeout=subscribe_timeout)
        _fork.track(self)

    # -- picking -----------------------------------------------------------------------

    def select(
        self, service: str, version: Optional[str] = None, *, key: Optional[str] = None,
        exclude: Collection[Instance] = (),
    ) -> Instance:
        """One instance of ``service`` (``version``, or any version when None) to call now.

        ``key`` routes with key-based balancers (``consistent_hash``). ``exclude``: instances
        to avoid while others can be picked (those a retried call already failed on). Raises
        :class:`~fyerreg.errors.NoInstanceAvailableError` when none can be picked.
        """
        return self._view(service, version).select(key, exclude)

    def pick(
        self, service: str, version: Optional[str] = None, *, key: Optional[str] = None,
        exclude: Collection[Instance] = (),
    ) -> _Pick:
        """``with discovery.pick(service) as inst:`` selects an instance and reports on the call.

        The block's duration is its latency; an exception escaping it (as judged by
        ``failure``) marks the call failed and is re-raised. Calls in flight are
        counted for the ``least_requests`` and ``p2c`` balancers.
        """
        return _Pick(self, service, version, key, exclude)

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
        key = (service, version)
        with self._open_lock:
            if self._closed:
                raise RegistryClosedError("Discovery is closed")
            view = self._views.get(key)
            if view is not None:
                return view
            opening = self._opening.get(key)
            first = opening is None
            if opening is None:
                opening = self._opening[key] = _Opening()
        if not first:
            error = opening.wait()
            view = self._views.get(key)
            if view is not None:
                return view
            raise error if error is not None else RegistryClosedError("Discovery is closed")
        try:
            view = self._subscribe_view(service, version)
        except BaseException as exc:
            opening.finish(exc)
            raise
        finally:
            with self._open_lock:
                self._opening.pop(key, None)
        opening.finish()
        return view

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
        if not self._resubscriber.stop(self._subscribe_timeout + 1.0 if timeout is None else timeout):
            log.warning("the discovery resubscribe thread did not stop in time")
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
    """One first subscribe to a (service, version) in progress, awaited by the other threads asking for it."""

    __slots__ = ("_done", "_error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: Optional[BaseException] = None

    def finish(self, error: Optional[BaseException] = None) -> None:
        self._error = error
        self._done.set()

    def wait(self) -> Optional[BaseException]:
        """Wait for the subscribe (bounded by its own timeout); what it raised, if anything."""
        self._done.wait()
        return self._error


class _Pick:
    """The context manager returned by :meth:`Discovery.pick`."""

    __slots__ = ("_discovery", "_service", "_version", "_key", "_exclude", "_view", "_instance", "_start")

    def __init__(self, discovery: Discovery, service: str, version: Optional[str], key: Optional[str],
                 exclude: Collection[Instance] = ()) -> None:
        self._discovery = discovery
        self._service = service
        self._version = version
        self._key = key
        self._exclude = exclude
        self._view: Optional[ServiceView] = None
        self._instance: Optional[Instance] = None
        self._start = 0.0

    def __enter__(self) -> Instance:
        d = self._discovery
        view = d._view(self._service, self._version)
        inst = view.select(self._key, self._exclude)
        view.begin(inst)
        self._view, self._instance = view, inst
        self._start = d._clock()
        return inst

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        view, inst = self._view, self._instance
        if view is None or inst is None:
            return
        d = self._discovery
        latency = max(d._clock() - self._start, 0.0)
        try:
            view.observe(inst, latency, exc is not None and d._failed(exc))
        finally:
            view.finish(inst)
