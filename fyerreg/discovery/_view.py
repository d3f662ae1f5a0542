"""One discovered (service, version): its subscription, current candidates, health and balancer."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Collection, Dict, FrozenSet, List, Optional, Sequence, Set

from ..errors import NoInstanceAvailableError
from ..metrics import Metrics, StatsBuilder
from ..naming import Instance
from ..registry.subscription import Snapshot, Subscription
from ._persist import SnapshotFile
from .balancer.base import Balancer, InstanceKey, instance_key
from .filters import InstanceFilter, apply_filters
from .health import Ejection, HealthTracker

log = logging.getLogger("fyerreg.discovery")


def _nothing_waiting() -> int:
    return 0


class _Counts:
    __slots__ = ("picks", "calls", "errors")

    def __init__(self) -> None:
        self.picks = 0
        self.calls = 0
        self.errors = 0


class ServiceView:
    """The locally served state of one (service, version).

    Picks never block on the backend: a pick first checks, without locking, whether
    the subscription queued a snapshot or a timed event (an ejection ending, an
    empty-set protection running out) is due; only then does one picking thread
    refresh the candidates while the others keep using the current ones.

    The view is the only door to its balancer: it hands the balancer the candidates
    (:meth:`select` picks through it), and calls' feedback reaches it through
    :meth:`begin`, :meth:`observe` and :meth:`finish`. Snapshots come in only through
    the subscription given to :meth:`attach` (read with ``qsize()`` and ``drain()``).
    """

    def __init__(
        self,
        service: str,
        version: Optional[str],
        *,
        balancer: Balancer,
        filters: Sequence[InstanceFilter],
        ejection: Optional[Ejection],
        panic: bool,
        protect_empty: Optional[float],
        store: Optional[SnapshotFile],
        clock: Callable[[], float],
        metrics: Metrics,
        on_lost: Callable[[ServiceView], None],
    ) -> None:
        self.service = service
        self.version = version
        self._balancer = balancer
        self._filters = tuple(filters)
        self._health = HealthTracker(ejection) if ejection is not None else None
        self._panic_allowed = panic
        self._protect_empty = protect_empty
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._on_lost = on_lost
        self._extra: Dict[str, Any] = {"service": service, "version": version}

        self._lock = threading.Lock()
        self._sub: Optional[Subscription] = None
        self._waiting: Callable[[], int] = _nothing_waiting  # the subscription's lock-free qsize
        self._deadline: Optional[float] = None
        self._rebuild_due = False
        self._snapshot: Optional[Snapshot] = None
        self._held_empty: Optional[Snapshot] = None
        self._protect_until: Optional[float] = None
        self._usable_keys: FrozenSet[InstanceKey] = frozenset()
        self._candidates: List[Instance] = []
        self._panic = False
        self._reason: Optional[str] = "the registry is unreachable and no instances are known yet"
        self._counts: Dict[InstanceKey, _Counts] = {}
        self._counts_by_id: Dict[int, _Counts] = {}
        self._needs_subscription = False
        self._orphaned = False

    @property
    def needs_subscription(self) -> bool:
        """True while the view has no subscription and should get one (see :meth:`attach`)."""
        return self._needs_subscription

    @property
    def orphaned(self) -> bool:
        """True once the registry was closed under the view: it serves its last set for good."""
        return self._orphaned

    # -- the hot path ------------------------------------------------------------------

    def select(self, key: Optional[str], exclude: Collection[Instance] = ()) -> Instance:
        """Pick one instance, refreshing first if a snapshot or a timed event is due.

        Instances in ``exclude`` (already tried by the caller) are avoided while others remain.
        """
        deadline = self._deadline
        if self._waiting() or (deadline is not None and self._clock() >= deadline):
            self.refresh(block=self._snapshot is None)
        reason = self._reason
        if reason is not None:
            raise NoInstanceAvailableError(self._describe(reason), service=self.service, version=self.version,
                                           reason=reason)
        inst = self._balancer.select(key)
        if exclude:
            inst = self._avoid(inst, key, {instance_key(i) for i in exclude})
        counts = self._counts_by_id.get(id(inst))
        if counts is not None:
            counts.picks += 1  # unlocked: exact single-threaded, may undercount under heavy contention
        return inst

    def _avoid(self, inst: Instance, key: Optional[str], excluded: Set[InstanceKey]) -> Instance:
        # Ask the balancer again a few times (keeps its policy); a deterministic one (a hash of
        # ``key``) keeps answering the same, so then take the first candidate not excluded.
        candidates = self._candidates
        for _ in range(len(candidates)):
            if instance_key(inst) not in excluded:
                return inst
            inst = self._balancer.select(key)
        others = [c for c in candidates if instance_key(c) not in excluded]
        return others[0] if others else inst

    def candidates(self) -> List[Instance]:
        """The instances picks are drawn from now."""
        deadline = self._deadline
        if self._waiting() or (deadline is not None and self._clock() >= deadline):
            self.refresh(block=True)
        return [] if self._reason is not None else list(self._candidates)

    # -- subscription --------------------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Serve from ``sub`` (a fresh subscription) from now on."""
        with self._lock:
            old, self._sub = self._sub, sub
            self._waiting = sub.qsize
            self._needs_subscription = False
        if old is not None and old is not sub:
            old.close()
        self.refresh(block=True)

    def start_cold(self, error: Exception) -> None:
        """The first subscribe failed: serve the saved set, if any, until one succeeds."""
        saved = self._store.load(self.service, self.version) if self._store is not None else None
        with self._lock:
            self._needs_subscription = True
            if saved is not None:
                log.warning("registry unreachable (%s); serving %d saved instances of %s/%s from %s",
                            error, len(saved), self.service, self.version or "*",
                            self._store.path if self._store else "", extra=self._extra)
                self._offer(saved)
                self._rebuild()
            else:
                self._reason = f"the registry is unreachable ({error}) and no instances are known"

    def give_up(self, error: Exception) -> None:
        """The registry was closed: keep serving the last set, stop resubscribing."""
        with self._lock:
            self._needs_subscription = False
            self._orphaned = True
        log.warning("cannot subscribe to %s/%s again (%s); serving the last known instances",
                    self.service, self.version or "*", error, extra=self._extra)

    def close(self) -> None:
        """End the subscription."""
        with self._lock:
            sub, self._sub = self._sub, None
            self._waiting = _nothing_waiting
            self._needs_subscription = False
        if sub is not None:
            sub.close()

    # -- refreshing ----------------------------------------------------------------------

    def refresh(self, *, block: bool) -> None:
        """Take pending snapshots and due timed events into account.

        With ``block`` False, returns at once when another thread is already refreshing.
        """
        if not self._lock.acquire(blocking=block):
            return
        try:
            changed = False
            sub = self._sub
            if sub is not None:
                snap = sub.drain()
                if sub.closed:
                    snap = sub.drain() or snap  # snapshots queued just before the end
                if snap is not None:
                    changed = self._offer(snap)
                if sub.closed:
                    self._lost(sub)
            now = self._clock()
            if self._health is not None:
                for key in self._health.expire(now):
                    changed = True
                    self._count("discovery_returns")
                    log.info("instance %s of %s/%s is back in rotation after its ejection", key[1],
                             self.service, self.version or "*", extra={**self._extra, "instance_id": key[1]})
            if self._protect_until is not None and now >= self._protect_until and self._held_empty is not None:
                log.warning("%s/%s stayed empty for %.1f s: accepting the empty instance set",
                            self.service, self.version or "*", self._protect_empty or 0.0, extra=self._extra)
                self._accept(self._held_empty)
                changed = True
            if changed or self._snapshot is None or self._rebuild_due:
                # Stays due if a filter or the balancer raises, so the next pick tries again
                # instead of serving the candidates of an older snapshot for good.
                self._rebuild_due = True
                self._deadline = self._clock()
                self._rebuild()
                self._rebuild_due = False
            self._schedule()
        finally:
            self._lock.release()

    def _lost(self, sub: Subscription) -> None:
        if self._sub is sub:
            self._sub = None
            self._waiting = _nothing_waiting
            self._needs_subscription = True
            log.info("subscription to %s/%s ended; serving the last known instances and subscribing again",
                     self.service, self.version or "*", extra=self._extra)
            self._on_lost(self)

    def _offer(self, snap: Snapshot) -> bool:
        """Consider a new snapshot; True when it replaced the served one."""
        current = self._snapshot
        if not snap and current:
            if snap.stale:
                return False  # an unreachable registry never empties the set
            if self._protect_empty:
                if self._protect_until is None:
                    self._protect_until = self._clock() + self._protect_empty
                    self._count("discovery_empty_protections")
                    log.warning("%s/%s would lose all its %d instances; keeping them for up to %.1f s",
                                self.service, self.version or "*", len(current), self._protect_empty,
                                extra=self._extra)
                self._held_empty = snap
                return False
        if self._protect_until is not None and snap:
            log.info("%s/%s has instances again; empty-set protection ended", self.service,
                     self.version or "*", extra=self._extra)
        self._accept(snap)
        return True

    def _accept(self, snap: Snapshot) -> None:
        self._protect_until = None
        self._held_empty = None
        self._snapshot = snap
        self._count("discovery_snapshots")
        if self._store is not None and not snap.stale:
            self._store.save(self.service, self.version, snap)

    def _schedule(self) -> None:
        times = [t for t in (self._protect_until,
                             self._health.next_deadline() if self._health is not None else None) if t is not None]
        self._deadline = min(times) if times else None

    def _rebuild(self) -> None:
        """Recompute the candidates from the snapshot, health and filters (lock held)."""
        snap = self._snapshot
        if snap is None:
            return
        usable = [inst for inst in snap if inst.enabled and inst.weight > 0]
        self._usable_keys = frozenset(instance_key(inst) for inst in usable)
        counts = {instance_key(inst): self._counts.get(instance_key(inst)) or _Counts() for inst in snap}
        self._counts = counts
        self._counts_by_id = {id(inst): counts[instance_key(inst)] for inst in snap}
        if self._health is not None:
            self._health.retain(instance_key(inst) for inst in snap)
        ejected = self._health.ejected if self._health is not None else set()
        healthy = [inst for inst in usable if instance_key(inst) not in ejected] if ejected else usable
        chosen = apply_filters(self._filters, healthy)
        panic = False
        reason: Optional[str] = None
        if not snap:
            reason = "no instance is registered"
        elif not usable:
            reason = f"all {len(snap)} instances are disabled or have weight 0"
        elif not chosen:
            matching = apply_filters(self._filters, usable)
            if not matching:
                reason = f"the filters {list(self._filters)!r} matched none of the {len(usable)} enabled instances"
            elif not self._panic_allowed:
                reason = f"all {len(matching)} matching instances are ejected after repeated failures"
            else:
                chosen, panic = matching, True
        if panic and not self._panic:
            log.warning("every candidate of %s/%s is ejected: picking among them anyway (panic mode)",
                        self.service, self.version or "*", extra=self._extra)
        self._panic = panic
        if reason is not None:
            self._reason = reason
            self._candidates = []
            return
        if chosen != self._candidates:
            self._balancer.update(chosen)
            self._candidates = chosen
        self._reason = None

    def _count(self, name: str) -> None:
        self._metrics.inc(name, 1, service=self.service, version=self.version or "*")

    def _describe(self, reason: str) -> str:
        return f"no instance of {self.service} version {self.version or '(any)'} available: {reason}"

    # -- feedback ------------------------------------------------------------------------

    def knows(self, instance: Instance) -> bool:
        """True when ``instance`` is one of this view's enabled instances."""
        return instance_key(instance) in self._usable_keys

    def begin(self, instance: Instance) -> None:
        """A call to ``instance`` (picked by :meth:`select`) starts: the balancer counts it in flight."""
        self._balancer.begin(instance)

    def finish(self, instance: Instance) -> None:
        """A call announced with :meth:`begin` has ended (its outcome goes to :meth:`observe`)."""
        self._balancer.finish(instance)

    def observe(self, instance: Instance, latency: float, failed: bool) -> None:
        """Feed one call's outcome to the balancer, the counters and outlier ejection."""
        self._balancer.observe(instance, latency, failed)
        key = instance_key(instance)
        counts = self._counts.get(key)
        if counts is not None:
            counts.calls += 1
            if failed:
                counts.errors += 1
        if self._health is None or key not in self._usable_keys:
            return
        duration = self._health.record(key, failed, self._clock(), len(self._usable_keys))
        if duration is None:
            return
        self._count("discovery_ejections")
        log.warning("ejecting instance %s (%s) of %s/%s for %.1f s after %d consecutive failures",
                    instance.id, instance.address, self.service, self.version or "*", duration,
                    self._health.policy.consecutive_failures,
                    extra={**self._extra, "instance_id": instance.id, "address": instance.address})
        with self._lock:
            self._rebuild()
            self._schedule()

    # -- introspection -------------------------------------------------------------------

    def add_stats(self, stats: StatsBuilder) -> None:
        """Add this view's figures to ``stats``: per-service gauges ``service_*``, per-instance
        counters and gauges ``instance_*`` (the figures of :meth:`describe`)."""
        state = self.describe()
        view = {"service": self.service, "version": self.version or "*"}
        if state["revision"] is not None:
            stats.gauge("service_revision", state["revision"], **view)
            stats.gauge("service_stale", state["stale"], **view)
        for name in ("subscribed", "candidates", "protecting_empty"):
            stats.gauge(f"service_{name}", state[name], **view)
        for row in state["instances"]:
            labels = {"service": self.service, "version": row["version"], "instance_id": row["id"],
                      "address": row["address"]}
            for name in ("picks", "calls", "errors", "ejections"):
                stats.counter(f"instance_{name}", row[name], **labels)
            for name in ("enabled", "weight", "ejected"):
                stats.gauge(f"instance_{name}", row[name], **labels)

    def describe(self) -> Dict[str, Any]:
        """This view's state for a reader (why nothing is available, panic) and per-instance counts."""
        with self._lock:
            snap = self._snapshot
            ejected = self._health.ejected if self._health is not None else set()
            instances = []
            for inst in snap or ():
                key = instance_key(inst)
                counts = self._counts.get(key) or _Counts()
                instances.append({
                    "id": inst.id,
                    "version": inst.version,
                    "address": inst.address,
                    "enabled": inst.enabled,
                    "weight": inst.weight,
                    "picks": counts.picks,
                    "calls": counts.calls,
                    "errors": counts.errors,
                    "ejected": key in ejected,
                    "ejections": self._health.ejections(key) if self._health is not None else 0,
                })
            return {
                "service": self.service,
                "version": self.version,
                "revision": snap.revision if snap is not None else None,
                "stale": snap.stale if snap is not None else None,
                "subscribed": self._sub is not None,
                "candidates": len(self._candidates) if self._reason is None else 0,
                "panic": self._panic,
                "protecting_empty": self._protect_until is not None,
                "unavailable_reason": self._reason,
                "instances": instances,
            }
