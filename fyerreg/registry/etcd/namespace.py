"""Which services a namespace holds, kept current by one watch of its root (read-only).

For the tools that show a whole namespace (``fyerreg ui``): a subscription follows one
service; this notices services that appear after it started, without re-reading etcd
on a timer. It is read-only and reports only names: instances come from subscriptions.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Set

from ..._threads import join_thread, start_thread
from ...errors import RegistryError
from ..kv._ops import Deadline, WatchBatch
from ..kv._surface import KVStream
from .registry import EtcdRegistry

__all__ = ["ServiceNames"]

log = logging.getLogger("fyerreg.registry.etcd")


class _Resync(Exception):
    """The names must be read again (a compacted start revision, a rolled-back store)."""


class ServiceNames:
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
        self._registry = registry
        self._client = registry._client
        self._layout = registry._layout
        self._on_new = on_new
        self._on_connection = on_connection or (lambda connected: None)
        self._thread_name = thread_name
        self._known: Set[str] = set()
        self._revision = 0
        self._connected = False
        self._reported: Optional[bool] = None  # what on_connection was last told (None: nothing yet)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Optional[KVStream] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def connected(self) -> bool:
        """True while the watch of the root is established."""
        return self._connected

    def names(self) -> Set[str]:
        """Every service seen so far."""
        with self._lock:
            return set(self._known)

    def start(self, *, timeout: Optional[float] = None) -> Set[str]:
        """Read the root (within ``timeout``), start watching it; the names found."""
        self._registry._check_open()
        found = self._read(Deadline(timeout))
        with self._lock:
            self._known |= found
        self._thread = start_thread(self._thread_name, self._run)
        return found

    def stop(self, timeout: float) -> bool:
        """End the watch and join its thread; True when it has ended."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.cancel()
        return self._thread is None or join_thread(self._thread, timeout)

    # -- the thread ------------------------------------------------------------------------------

    def _read(self, deadline: Deadline) -> Set[str]:
        result = self._client.get_prefix(self._layout.root, deadline=deadline, stop=self._stop)
        self._revision = result.revision
        return {name for name in (self._layout.service_of(kv.key) for kv in result.kvs) if name}

    def _resync(self) -> None:
        found = self._read(Deadline(self._registry.options.dial_timeout))
        self._announce(found)

    def _announce(self, names: Set[str]) -> None:
        with self._lock:
            new = sorted(names - self._known)
            self._known |= names
        for name in new:
            self._on_new(name)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if connected != self._reported:  # a watch that breaks before it was ever established is reported too
            self._reported = connected
            self._on_connection(connected)

    def _run(self) -> None:
        failures = 0
        resync = False
        retry = self._client.retry
        while not self._stop.is_set():
            try:
                if resync:
                    self._resync()
                    resync = False
                self._watch_once()
                failures = 0
            except _Resync:
                resync = True
            except Exception as exc:  # a bug, too, must not end the watch silently
                if self._stop.is_set():
                    break
                resync = True
                failures += 1
                self._set_connected(False)
                if not isinstance(exc, RegistryError):
                    log.exception("watch of the services under %s failed unexpectedly; restarting it",
                                  self._layout.root)
                else:
                    log.debug("watch of the services under %s broke: %s", self._layout.root, exc)
                self._stop.wait(retry.wait_time(failures))
        self._connected = False

    def _watch_once(self) -> None:
        stream = self._client.watch(self._layout.root, self._revision + 1)
        with self._lock:
            self._stream = stream
        try:
            if self._stop.is_set():
                return
            for batch in stream:
                if self._stop.is_set():
                    return
                self._handle(batch)
            if not self._stop.is_set():
                raise RegistryError(f"the watch of {self._layout.root} ended")
        finally:
            stream.cancel()
            with self._lock:
                self._stream = None

    def _handle(self, batch: WatchBatch) -> None:
        if batch.compact_revision:
            raise _Resync("compacted")
        if batch.created:
            if batch.revision < self._revision:
                raise _Resync("rolled back")
            self._set_connected(True)
            return
        if batch.canceled:
            raise RegistryError(f"etcd cancelled the watch of {self._layout.root}: {batch.cancel_reason}")
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
