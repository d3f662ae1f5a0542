"""Which services a namespace holds, kept current by one watch of its root (read-only).

For the tools that show a whole namespace (``fyerreg ui``): a subscription follows one
service; this notices services that appear after it started, without re-reading etcd
on a timer. It is read-only and reports only names: instances come from subscriptions.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Set

from ..._threads import start_thread
from ..kv._ops import Deadline, WatchBatch
from ..kv._resumable import ResumableWatch
from .registry import EtcdRegistry

__all__ = ["ServiceNames"]

class ServiceNames(ResumableWatch):
    """The names of the services under ``registry``'s namespace, and every new one as it appears.

    :meth:`start` reads the namespace's root once and returns the names found; from then
    on a thread (``fyerreg-<thread_name>``) watches the root from that read's revision + 1
    and calls ``on_new(name)`` once per service not seen before (in that thread: return
    quickly). ``on_connection(connected)`` is called when the watch breaks (False) and
    when it is established again (True): what a viewer shows as "etcd unreachable". A
    broken watch is resumed with the registry's backoff after reading the root again, so
    no service is missed. A service whose records all went stays known.
    """

    def __init__(self, registry: EtcdRegistry, on_new: Callable[[str], None], *,
                 on_connection: Optional[Callable[[bool], None]] = None, thread_name: str = "names") -> None:
        super().__init__(registry._client, registry._layout.root, retry=registry._client.retry,
                         thread_name=thread_name)
        self._registry = registry
        self._layout = registry._layout
        self._on_new = on_new
        self._on_connection = on_connection or (lambda connected: None)
        self._known: Set[str] = set()
        self._reported: Optional[bool] = None  # what on_connection was last told (None: nothing yet)

    @property
    def connected(self) -> bool:
        """True while the watch of the root is established."""
        return self._connected

    def names(self) -> Set[str]:
        """Every service seen so far."""
        with self._lock:
            return set(self._known)

    def start(self, *, timeout: Optional[float] = None) -> Set[str]:  # type: ignore[override]
        """Read the root (within ``timeout``), start watching it; the names found."""
        self._registry._check_open()
        found = self._read(Deadline(timeout))
        with self._lock:
            self._known |= found
        self._thread = start_thread(self.thread_name, self._run)
        return found

    # -- the watch -------------------------------------------------------------------------------

    def _read(self, deadline: Deadline) -> Set[str]:
        result = self.client.get_prefix(self.prefix, deadline=deadline, stop=self._stop)
        self._revision = result.revision
        return {name for name in (self._layout.service_of(kv.key) for kv in result.kvs) if name}

    def _resynced(self, reason: str) -> bool:
        self._announce(self._read(Deadline(self._registry.options.dial_timeout)))
        return True

    def _announce(self, names: Set[str]) -> None:
        with self._lock:
            new = sorted(names - self._known)
            self._known |= names
        for name in new:
            self._on_new(name)

    def _set_connected(self, connected: bool) -> None:
        super()._set_connected(connected)
        if connected != self._reported:  # a watch that breaks before it was ever established is reported too
            self._reported = connected
            self._on_connection(connected)

    def _apply(self, batch: WatchBatch) -> bool:
        names = set()
        for event in batch.events:
            self._revision = max(self._revision, event.kv.mod_revision)
            if not event.deleted:
                name = self._layout.service_of(event.kv.key)
                if name:
                    names.add(name)
        if not batch.events:
            self._revision = max(self._revision, batch.revision)
        if names:
            self._announce(names)
        return True

    def _extra(self, **more: object) -> Dict[str, object]:
        return {"namespace_root": self.prefix, **more}
