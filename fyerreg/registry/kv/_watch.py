"""One thread per watched (service, version): a local copy of its instances, kept by an etcd watch.

(The memory backend feeds the same local copy in the writing thread instead: ``apply``
and ``reload`` are the doors it uses.)

The state is read at revision R and watched from R+1, so nothing between the read and
the watch is lost. Events are applied incrementally and each watch response that
changes the state produces one snapshot. A broken stream is re-established with
backoff (on whichever endpoint works) after reading the state again at R' and
watching from R'+1: a snapshot is pushed when the state changed meanwhile. A
compacted start revision makes it read the state again and push a fresh snapshot.
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import Callable, Dict, Iterable, Optional, Tuple

from ..._threads import join_thread, start_thread
from ...errors import RegistryError
from ...metrics import Metrics
from ...naming import Instance
from ...retry import Retry
from ..subscription import Snapshot
from ._decode import RecordDecoder
from ._ops import Deadline, WatchBatch
from ._surface import KVClient, KVStream

__all__ = ["PrefixWatch"]

log = logging.getLogger("fyerreg.registry.etcd")

Sink = Callable[[Snapshot], bool]
"""Receives each new snapshot; returning False ends the watch (the consumer is gone)."""


class _Ordered:
    """The instances of a watch in snapshot order, kept sorted as events arrive.

    A snapshot is then a list copy instead of a sort: at 10 000 instances the sort
    cost over a millisecond per change, the copy some tens of microseconds. Within
    one watch (service, version, id) is unique (the decoder checks each record
    against its key), so (id, version) orders the instances without ties.
    """

    def __init__(self, instances: Iterable[Instance] = ()) -> None:
        self.items = sorted(instances, key=_order)
        self.keys = [_order(inst) for inst in self.items]

    def put(self, instance: Instance) -> None:
        key = _order(instance)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            self.items[at] = instance
        else:
            self.keys.insert(at, key)
            self.items.insert(at, instance)

    def remove(self, instance: Instance) -> None:
        key = _order(instance)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at]
            del self.items[at]


def _order(instance: Instance) -> Tuple[str, str]:
    return (instance.id, instance.version)


class _Resync(Exception):
    """The local state must be read again from etcd (compaction or a rolled-back store)."""


class PrefixWatch:
    """The instances of (``service``, ``version``) kept current by a watch on a thread of its own.

    Each change after the first read goes to ``sink`` (a subscription's ``publish``);
    without one (the ``list_services`` cache) the state is only read in place.
    """

    def __init__(self, client: KVClient, decoder: RecordDecoder, metrics: Metrics, *,
                 service: str, version: Optional[str], retry: Retry, thread_name: str,
                 read_timeout: float, sink: Optional[Sink] = None) -> None:
        self.client = client
        self.read_timeout = read_timeout
        self.decoder = decoder
        self.metrics = metrics
        self.service = service
        self.version = version
        self.prefix = decoder.layout.prefix(service, version)
        self.retry = retry
        self.thread_name = thread_name
        self._sink = sink
        self._state: Dict[str, Instance] = {}
        self._ordered = _Ordered()
        self._revision = 0
        self._connected = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Optional[KVStream] = None
        self._thread: Optional[threading.Thread] = None
        self._updated = threading.Condition(self._lock)

    # -- state --------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The store revision the local state reflects."""
        return self._revision

    @property
    def connected(self) -> bool:
        """True while the watch stream is established (the state is current)."""
        return self._connected and not self._stop.is_set()

    def snapshot(self, *, stale: bool = False) -> Snapshot:
        """The current local state."""
        with self._lock:
            return Snapshot._presorted(self._ordered.items, revision=self._revision, stale=stale)

    def wait_connected(self, timeout: Optional[float]) -> bool:
        """Wait until the watch stream is established (True) or ``timeout`` passes (False)."""
        with self._updated:
            return self._updated.wait_for(lambda: self._connected or self._stop.is_set(), timeout)

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Wait until the state reflects ``revision`` (True) or ``timeout`` passes (False)."""
        with self._updated:
            return self._updated.wait_for(lambda: self._revision >= revision and self._connected, timeout)

    def load(self, *, deadline: Optional[Deadline]) -> Snapshot:
        """Read the current state (the first snapshot); call before :meth:`start`."""
        self._read_state(deadline=deadline)
        return self.snapshot()

    def _read_state(self, *, deadline: Optional[Deadline]) -> bool:
        """Replace the local state by a fresh read; True when it changed."""
        result = self.client.get_prefix(self.prefix, deadline=deadline, stop=self._stop)
        state = self.decoder.decode_all(result.kvs, self.service, self.version)
        with self._updated:
            changed = state != self._state
            self._state = state
            self._ordered = _Ordered(state.values())
            self._revision = result.revision
            self._updated.notify_all()
        return changed

    # -- thread -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching from the loaded revision + 1."""
        self._thread = start_thread(self.thread_name, self._run)

    def signal_stop(self) -> None:
        """Ask the thread to end and cancel its stream, without waiting for it."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.cancel()

    def stop(self, timeout: float) -> bool:
        """End the watch and join its thread; True when it has ended."""
        self.signal_stop()
        return self._thread is None or join_thread(self._thread, timeout)

    def _deliver(self) -> bool:
        sink = self._sink
        if sink is None:
            return True
        delivered = sink(self.snapshot())
        if delivered:
            self.metrics.inc("snapshots_delivered")
        return delivered

    def _run(self) -> None:
        failures = 0
        resync: Optional[str] = None
        while not self._stop.is_set():
            try:
                if resync is not None:
                    changed = self._read_state(deadline=Deadline(self.read_timeout))
                    if (changed or resync == "compacted") and not self._deliver():
                        break
                    resync = None
                self._watch_once(failures)
                failures = 0
            except _Resync as exc:
                resync = str(exc)
            except Exception as exc:  # a bug, too, must never end the watch silently
                if self._stop.is_set():
                    break
                # Read the state again before watching: resuming from our last revision
                # would miss everything if etcd came back wiped or restored from a
                # snapshot whose revisions have since passed ours.
                resync = "reconnect"
                self._connected = False
                failures += 1
                if not isinstance(exc, (RegistryError, _Cancelled)):
                    log.exception("watch of %s failed unexpectedly; restarting it", self.prefix,
                                  extra=self._extra(attempt=failures))
                elif failures == 1 and not getattr(exc, "reported", False):
                    log.warning("watch of %s broke; reconnecting: %s", self.prefix, exc,
                                extra=self._extra(attempt=failures))
                else:
                    log.debug("watch of %s still broken: %s", self.prefix, exc, extra=self._extra(attempt=failures))
                self._stop.wait(self.retry.wait_time(failures))
        self._connected = False

    def _extra(self, **more: object) -> Dict[str, object]:
        extra: Dict[str, object] = {"service": self.service, "version": self.version or "*"}
        extra.update(more)
        return extra

    def _watch_once(self, failures: int) -> None:
        """Run one watch stream until it ends; raises _Resync, _Cancelled or a RegistryError."""
        stream = self.client.watch(self.prefix, self._revision + 1)
        with self._lock:
            self._stream = stream
        try:
            if self._stop.is_set():
                return
            for batch in stream:
                if self._stop.is_set():
                    return
                if not self._handle(batch, failures, stream):
                    self._stop.set()
                    return
        finally:
            stream.cancel()
            with self._lock:
                self._stream = None
            self._connected = False

    def _handle(self, batch: WatchBatch, failures: int, stream: KVStream) -> bool:
        """Apply one watch response; False when the consumer is gone."""
        if batch.compact_revision:
            self.metrics.inc("compaction_recoveries")
            log.warning("watch of %s: revision %d is compacted (oldest kept: %d); reading the state again",
                        self.prefix, self._revision + 1, batch.compact_revision, extra=self._extra())
            raise _Resync("compacted")
        if batch.created:
            if batch.revision < self._revision:
                log.warning("etcd at revision %d went back before %d (restored or wiped); reading %s again",
                            batch.revision, self._revision, self.prefix,
                            extra=self._extra(endpoint=stream.endpoint))
                raise _Resync("rolled back")
            with self._updated:
                self._connected = True
                self._updated.notify_all()
            if failures:
                self.metrics.inc("watch_reconnects")
                log.info("watch of %s resumed at revision %d", self.prefix, self._revision + 1,
                         extra=self._extra(endpoint=stream.endpoint, attempt=failures))
            return True
        if batch.canceled:
            raise _Cancelled(f"etcd cancelled the watch of {self.prefix}: {batch.cancel_reason or 'no reason given'}")
        return self.apply(batch)

    def reload(self) -> None:
        """Read the state again and deliver it when it changed (a client that lost changes meanwhile)."""
        if self._read_state(deadline=Deadline(self.read_timeout)):
            self._deliver()

    def apply(self, batch: WatchBatch) -> bool:
        """Apply the events of one watch response; deliver a snapshot when the state changed.

        False when the consumer is gone.
        """
        changed = False
        with self._updated:
            for event in batch.events:
                key = event.kv.key
                if event.kv.mod_revision <= self._revision:
                    continue  # already reflected (never expected; harmless)
                instance = None if event.deleted else self.decoder.decode(event.kv, self.service, self.version)
                if instance is None:
                    gone = self._state.pop(key, None)
                    if gone is not None:
                        self._ordered.remove(gone)
                        changed = True
                elif self._state.get(key) != instance:
                    self._state[key] = instance
                    self._ordered.put(instance)
                    changed = True
            if batch.events:
                self._revision = max(self._revision, max(ev.kv.mod_revision for ev in batch.events))
            else:
                # A progress notification: every later event has a higher revision.
                self._revision = max(self._revision, batch.revision)
            self._updated.notify_all()
        return self._deliver() if changed else True


class _Cancelled(Exception):
    """etcd ended the watch (no leader, permissions changed): resume it after a backoff."""

