"""The registry on etcd's model, for any client of the etcd surface: both backends are one of these.

It keeps the map of registrations (each instance's whole life is its
:class:`~._registration.Registration`), the subscriptions with their watches, the
``list_services`` cache when there is one, and close()'s budget. The etcd backend
builds it over :class:`~fyerreg.registry.etcd._client.EtcdClient`, the memory backend over
:class:`~fyerreg.registry._memory_client.MemoryClient`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Set, Tuple, Type

from ...errors import NotRegisteredError, RegistryClosedError, RegistryError
from ...metrics import Metrics, Stats, StatsBuilder
from ...naming import Instance
from ..base import STATS_COUNTERS, RegistrationState, Registry
from ..layouts import Layout
from ..subscription import Snapshot, Subscription
from ._cache import ServiceCache
from ._decode import RecordDecoder
from ._ops import Deadline
from ._records import RecordWriter, instance_extra
from ._registration import Registration
from ._spare import SpareLease
from ._surface import KVClient
from ._watch import PrefixWatch, Sink

__all__ = ["LeasedRegistry", "CLOSE_GRACE"]

SPARE_REVOKE_WAIT = 0.25
"""Most seconds close() gives to revoking the unused spare lease."""

log = logging.getLogger("fyerreg.registry.etcd")

InstanceKey = Tuple[str, str, str]

CLOSE_GRACE = 0.5
"""Seconds close() waits, past its timeout, for its threads to end once the connection is closed."""


class LeasedRegistry(Registry):
    """Instances as records bound to leases kept alive by their own threads; subscriptions as prefix watches.

    ``ttl`` is the lease time-to-live (0: leases that never expire, and no keepalive
    threads); ``call_wait`` bounds a heartbeat's calls, a watch's re-read and how long
    subscribe() waits for its watch; ``close_budget`` is close()'s default timeout.
    """

    def __init__(self, client: KVClient, layout: Layout, *, ttl: float, call_wait: float,
                 close_budget: float, spare_leases: bool = False) -> None:
        super().__init__()
        self._metrics = Metrics()
        self._client = client
        self._layout = layout
        self._ttl = ttl
        self._call_wait = call_wait
        self._close_budget = close_budget
        self._decoder = RecordDecoder(self._layout, self._metrics)
        self._spare_leases = spare_leases
        self._writer = self._new_writer()
        self._lock = threading.RLock()
        self._regs: Dict[InstanceKey, Registration] = {}
        self._lingering: Set[Registration] = set()
        self._subs: Dict[int, Tuple[Subscription, PrefixWatch]] = {}
        self._conflated_closed = 0
        self._join_timeout = call_wait + 1.0
        self._cache: Optional[ServiceCache] = None

    def _new_writer(self) -> RecordWriter:
        spare = SpareLease(self._client, self._ttl, grant_timeout=self._call_wait) \
            if self._spare_leases and self._ttl > 0 else None
        return RecordWriter(self._client, self._layout, self._ttl, spare)

    # -- what a backend chooses ---------------------------------------------------------------

    _watch_type: Type[PrefixWatch] = PrefixWatch
    """The watch that keeps a subscription or a cache entry current."""

    def _keepalive_name(self, instance: Instance) -> str:
        return f"keepalive-{instance.service}-{instance.id}"

    def _heartbeat_gate(self) -> bool:
        """Whether the keepalive threads heartbeat now (always, unless a backend holds them)."""
        return True

    def _check_reachable(self) -> None:
        """Raise before a call when the backend already knows its store cannot be reached."""

    def _close_client(self) -> None:
        self._client.close()

    # -- registration ---------------------------------------------------------------------------

    def _new_registration(self, instance: Instance) -> Registration:
        interval = self._ttl / 3.0 if self._ttl > 0 else None
        # A heartbeat stuck on a frozen member must give up in time for the next one.
        call_timeout = min(self._call_wait, max(1.0, interval)) if interval is not None else self._call_wait
        return Registration(instance, self._writer, self._metrics,
                            interval=interval, retry=self._client.retry, call_timeout=call_timeout,
                            thread_name=self._keepalive_name(instance), heartbeat_gate=self._heartbeat_gate)

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        self._check_reachable()
        deadline = Deadline(timeout)
        while True:
            with self._lock:
                self._check_open()
                reg = self._regs.get(instance.key)
                if reg is None:
                    reg = self._regs[instance.key] = self._new_registration(instance)
            try:
                revision = reg.register(instance, exclusive=exclusive, deadline=deadline)
            finally:
                self._drop_if_finished(reg)
            if revision is not None:
                self._wrote(instance, revision)
                return
            # deregistered meanwhile: start over

    def _drop_if_finished(self, reg: Registration) -> None:
        if reg.finished:
            with self._lock:
                if self._regs.get(reg.instance.key) is reg:
                    del self._regs[reg.instance.key]

    def _wrote(self, instance: Instance, revision: int) -> None:
        if self._cache is not None:
            self._cache.wrote(instance.service, instance.version, revision)

    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._check_reachable()
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            raise NotRegisteredError(f"{self._writer.key_of(instance, 0)} was not registered through this registry")
        self._wrote(instance, reg.update(instance, deadline=Deadline(timeout)))

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._check_reachable()
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            log.debug("deregister of %s: not registered through this registry", self._writer.key_of(instance, 0))
            return
        deadline = Deadline(timeout)
        try:
            revision = reg.remove(deadline=deadline)
        finally:
            self._drop_if_finished(reg)
            left = deadline.left()
            if not reg.join(self._join_timeout if left is None else left):
                with self._lock:
                    self._lingering.add(reg)  # a thread still in a call: close() joins it
        if revision is not None:
            self._wrote(reg.instance, revision)

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            return RegistrationState(registered=False)
        return reg.state()

    # -- discovery ------------------------------------------------------------------------------

    def _new_watch(self, service: str, version: Optional[str], kind: str,
                   sink: Optional[Sink] = None) -> PrefixWatch:
        return self._watch_type(self._client, self._decoder, self._metrics, service=service, version=version,
                                retry=self._client.retry, thread_name=f"{kind}-{service}-{version or '*'}",
                                read_timeout=self._call_wait, sink=sink)

    def _read(self, service: str, version: Optional[str], deadline: Deadline) -> Snapshot:
        result = self._client.get_prefix(self._layout.prefix(service, version), deadline=deadline)
        found = self._decoder.decode_all(result.kvs, service, version)
        return Snapshot(found.values(), revision=result.revision)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        self._check_reachable()
        deadline = Deadline(timeout)  # one budget for the cache's catch-up and a direct read
        if self._cache is None:
            return list(self._read(service, version, deadline))
        return self._cache.list(service, version, deadline=deadline,
                                read=lambda: self._read(service, version, deadline))

    def _do_subscribe(self, service: str, version: Optional[str], *, maxsize: int,
                      timeout: Optional[float]) -> Subscription:
        self._check_reachable()
        deadline = Deadline(timeout)
        sub = Subscription(service, version, maxsize=maxsize, on_close=self._subscription_closed)
        watch = self._new_watch(service, version, "watch", sink=sub.publish)
        sub.publish(watch.load(deadline=deadline))
        self._metrics.inc("snapshots_delivered")
        with self._lock:
            if self.closed:
                sub.close()
                raise RegistryClosedError(f"{type(self).__name__} is closed")
            self._subs[id(sub)] = (sub, watch)
        watch.start()
        # Return once watching, so that every later change reaches this subscription as
        # its own watch response. Not watching yet is no error: the thread keeps trying
        # and misses nothing (it watches from the first snapshot's revision on).
        wait = self._call_wait
        watch.wait_connected(wait if timeout is None else max(0.0, min(wait, deadline.left() or 0.0)))
        return sub

    def _subscription_closed(self, sub: Subscription) -> None:
        with self._lock:
            entry = self._subs.pop(id(sub), None)
            self._conflated_closed += sub.conflated
        if entry is not None:
            entry[1].stop(self._join_timeout)

    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None:
        with self._lock:
            subs = [sub for sub, _ in self._subs.values() if sub.service == service and sub.version == version]
        for sub in subs:
            sub.close()

    # -- the rest -------------------------------------------------------------------------------

    def _do_stats(self) -> Stats:
        counter = self._metrics.counter
        with self._lock:
            subs = [sub for sub, _ in self._subs.values()]
            conflated = self._conflated_closed + sum(sub.conflated for sub in subs)
            instances = sum(1 for reg in self._regs.values() if reg.active)
        stats = StatsBuilder()
        for name in STATS_COUNTERS:
            stats.counter(name, conflated if name == "snapshots_conflated" else int(counter(name)))
        stats.gauge("instances_registered", instances)
        stats.gauge("subscriptions", len(subs))
        stats.gauge("cached_services", len(self._cache) if self._cache is not None else 0)
        return stats.build()

    def _do_close(self, *, timeout: Optional[float]) -> None:
        budget = timeout if timeout is not None else self._close_budget
        deadline = Deadline(budget)
        with self._lock:
            regs = list(self._regs.values())
            self._regs.clear()
            subs = list(self._subs.values())
            self._subs.clear()
        # Finished first, so no write starts; a write in flight removes what it holds when it ends.
        in_flight = [reg for reg in regs if reg.abandon()]
        left_behind: List[Registration] = []
        error: Optional[RegistryError] = None
        for reg in regs:
            if reg in in_flight:
                continue
            if deadline.passed():
                left_behind.append(reg)
                continue
            try:
                reg.withdraw(deadline=deadline)
            except RegistryError as exc:
                left_behind.append(reg)
                error = exc
        left_behind += [reg for reg in in_flight if not reg.wait_idle(deadline.left() or 0.0)]
        if left_behind:
            log.warning("close() could not deregister %d instance(s) within %gs (%s); their leases expire "
                        "within %gs: %s", len(left_behind), budget,
                        error or "a call in flight waited on etcd", self._ttl,
                        ", ".join(reg.key for reg in left_behind), extra={"instances": len(left_behind)})
        # Stopped, then disconnected: calls still in flight (watch reads, heartbeats, other
        # threads' writes) end with the connection, so the threads end at once.
        for _, watch in subs:
            watch.signal_stop()
        if self._cache is not None:
            self._cache.signal_stop()
        spare = self._writer.spare
        if spare is not None:
            # Revoked only while etcd answers, and briefly: it expires by itself, and closing
            # the connection (which ends other threads' calls) must not wait for it.
            spare.stop(revoke=not left_behind,
                       deadline=Deadline(min(SPARE_REVOKE_WAIT, max(0.0, deadline.left() or 0.0))))
        self._close_client()
        join_deadline = time.monotonic() + (deadline.left() or 0.0) + CLOSE_GRACE
        for sub, watch in subs:
            sub.close()
            watch.stop(max(0.0, join_deadline - time.monotonic()))
        if self._cache is not None:
            self._cache.close(max(0.0, join_deadline - time.monotonic()))
        with self._lock:
            lingering, self._lingering = list(self._lingering), set()
        if spare is not None and not spare.join(max(0.0, join_deadline - time.monotonic())):
            log.warning("the spare lease thread did not end at close")
        for reg in [*regs, *lingering]:
            if not reg.join(max(0.0, join_deadline - time.monotonic())):
                log.warning("keepalive thread of %s did not end at close", reg.key,
                            extra=instance_extra(reg.instance, reg.lease_id))
