"""One thread per watched (service, version): a local copy of its instances, kept by an etcd watch.

(The memory backend feeds the same local copy in the writing thread instead: ``apply``
and ``reload`` are the doors it uses.)

The state is read at revision R and watched from R+1 (:class:`~._resumable.ResumableWatch`
resumes it). Events are applied incrementally and each watch response that changes the
state produces one snapshot. After a broken stream the state is read again, and a
snapshot pushed when it changed meanwhile; after a compacted start revision a fresh
snapshot is pushed whatever it holds.
"""

from __future__ import annotations

import bisect
from typing import Callable, Dict, Iterable, Optional, Tuple

from ...metrics import Metrics
from ...naming import Instance
from ...retry import Retry
from ..subscription import Snapshot
from ._decode import RecordDecoder
from ._ops import Deadline, WatchBatch
from ._resumable import ResumableWatch
from ._surface import KVClient

__all__ = ["PrefixWatch"]

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


class PrefixWatch(ResumableWatch):
    """The instances of (``service``, ``version``) kept current by a watch on a thread of its own.

    Each change after the first read goes to ``sink`` (a subscription's ``publish``);
    without one (the ``list_services`` cache) the state is only read in place.
    """

    def __init__(self, client: KVClient, decoder: RecordDecoder, metrics: Metrics, *,
                 service: str, version: Optional[str], retry: Retry, thread_name: str,
                 read_timeout: float, sink: Optional[Sink] = None) -> None:
        super().__init__(client, decoder.layout.prefix(service, version), retry=retry, thread_name=thread_name,
                         metrics=metrics)
        self.read_timeout = read_timeout
        self.decoder = decoder
        self.metrics = metrics
        self.service = service
        self.version = version
        self._sink = sink
        self._state: Dict[str, Instance] = {}
        self._ordered = _Ordered()

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

    # -- the watch ----------------------------------------------------------------------------

    def _deliver(self) -> bool:
        sink = self._sink
        if sink is None:
            return True
        delivered = sink(self.snapshot())
        if delivered:
            self.metrics.inc("snapshots_delivered")
        return delivered

    def _resynced(self, reason: str) -> bool:
        changed = self._read_state(deadline=Deadline(self.read_timeout))
        return not (changed or reason == "compacted") or self._deliver()

    def _apply(self, batch: WatchBatch) -> bool:
        return self.apply(batch)

    def _extra(self, **more: object) -> Dict[str, object]:
        extra: Dict[str, object] = {"service": self.service, "version": self.version or "*"}
        extra.update(more)
        return extra

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
