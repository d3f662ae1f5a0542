"""Maintenance keys: an operator's request that an instance advertise itself disabled.

``fyerreg maint on`` writes ``/{namespace}/maintenance/{service}/{version}/{id}`` for a
record it read (outside the records' prefix, so Go fyer-rpc and the other layouts' readers
never see it; no lease: it outlives the process, so an instance restarted with the same id
stays in maintenance), its value holding the record's ``address``; ``fyerreg maint off``
deletes it. The process that owns the record watches its service's keys
(:class:`MaintenanceWatch`) and writes the status itself: nobody else ever rewrites a
record that a keepalive keeps. A key is an instance's when its version is the instance's
(or the layout's :data:`~fyerreg.registry.layouts.NO_VERSION`) and its id or its address
is: layouts whose keys name the lease (go-zero) read records back under another id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..._threads import join_thread, start_thread
from ...errors import RegistryError
from ...naming import Instance, _check_segment
from ..layouts import NO_VERSION
from ._leased import LeasedRegistry
from ._ops import Deadline, Delete, Put, Txn, WatchBatch
from ._surface import KVClient, KVStream

__all__ = ["MaintenanceWatch", "maintenance_key", "maintenance_prefix", "names", "watch_maintenance", "put_maintenance",
           "delete_maintenance", "list_maintenance"]

log = logging.getLogger("fyerreg.serving.health")


def _namespace(registry: LeasedRegistry) -> str:
    options = getattr(registry, "options", None)
    namespace = getattr(options, "namespace", None) or getattr(registry._layout, "namespace", None)
    return str(namespace or "fyerrpc").strip("/")


def maintenance_prefix(registry: LeasedRegistry, service: Optional[str] = None, version: Optional[str] = None) -> str:
    """Where the maintenance keys of ``registry``'s namespace (of ``service``, of ``version``) sit."""
    prefix = f"/{_namespace(registry)}/maintenance/"
    if service is not None:
        prefix += f"{service}/"
        if version is not None:
            prefix += f"{version}/"
    return prefix


def maintenance_key(registry: LeasedRegistry, instance: Instance) -> str:
    """The maintenance key of ``instance``."""
    return f"{maintenance_prefix(registry, instance.service, instance.version)}{instance.id}"


def put_maintenance(registry: LeasedRegistry, instance: Instance, reason: str, *,
                    timeout: Optional[float] = None) -> str:
    """Ask ``instance``'s owner to advertise it disabled; returns the key written."""
    registry._check_open()
    key = maintenance_key(registry, instance)
    value = json.dumps({"reason": reason, "since": int(time.time()), "address": instance.address}).encode()
    registry._client.txn(Txn([], [Put(key, value)], []), deadline=Deadline(timeout))
    return key


def delete_maintenance(registry: LeasedRegistry, service: str, version: Optional[str] = None,
                       id: Optional[str] = None, *, timeout: Optional[float] = None) -> List[str]:
    """Delete the maintenance keys of ``service`` (of ``version``, of ``id``); returns the keys deleted."""
    keys = [key for key, _ in list_maintenance(registry, service, version, timeout=timeout)
            if id is None or key.rsplit("/", 1)[1] == id]
    for key in keys:
        registry._client.txn(Txn([], [Delete(key)], []), deadline=Deadline(timeout))
    return keys


def list_maintenance(registry: LeasedRegistry, service: str, version: Optional[str] = None, *,
                     timeout: Optional[float] = None) -> List[Tuple[str, str]]:
    """``(key, reason)`` of every maintenance key of ``service`` (of ``version``), sorted by key."""
    registry._check_open()
    _check_segment("service", service)
    if version is not None:
        _check_segment("version", version)
    result = registry._client.get_prefix(maintenance_prefix(registry, service, version), deadline=Deadline(timeout))
    return sorted((kv.key, _reason(kv.value)) for kv in result.kvs)


def _field(value: bytes, name: str) -> str:
    try:
        data = json.loads(value)
    except ValueError:
        return ""
    return str(data.get(name, "")) if isinstance(data, dict) else ""


def _reason(value: bytes) -> str:
    return _field(value, "reason")


def names(instance: Instance, prefix: str, key: str, value: bytes) -> bool:
    """Whether the maintenance ``key`` (under ``prefix``, the service's) holding ``value`` names ``instance``."""
    version, _, id_ = key[len(prefix):].partition("/")
    if version not in (instance.version, NO_VERSION):
        return False
    return id_ == instance.id or _field(value, "address") == instance.address


class MaintenanceWatch:
    """Tells ``on_change(True/False)`` whether a maintenance key names ``instance``, as that changes.

    The first read's answer is given too. A broken watch is read and watched again with
    the client's backoff: a change made meanwhile is not lost. Stopped by :meth:`stop`.
    """

    def __init__(self, client: KVClient, prefix: str, instance: Instance, on_change: Callable[[bool], None], *,
                 thread_name: str, read_timeout: float = 5.0) -> None:
        self._client = client
        self._prefix = prefix
        self._instance = instance
        self._mine: Dict[str, bool] = {}
        self._on_change = on_change
        self._thread_name = thread_name
        self._read_timeout = read_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Optional[KVStream] = None
        self._cancel: Optional[Callable[[], None]] = None
        self._thread: Optional[threading.Thread] = None
        self._present: Optional[bool] = None
        self._revision = 0

    def start(self) -> None:
        """Start watching in a thread of its own."""
        self._thread = start_thread(self._thread_name, self._run)

    def stop(self, timeout: float) -> bool:
        """End the watch and join its thread; True when it has ended."""
        self._stop.set()
        with self._lock:
            stream, cancel = self._stream, self._cancel
        if stream is not None:
            stream.cancel()
        if cancel is not None:
            cancel()
        return self._thread is None or join_thread(self._thread, timeout)

    def _tell(self, present: bool) -> None:
        if present != self._present and not self._stop.is_set():
            self._present = present
            self._on_change(present)

    def _read(self) -> None:
        result = self._client.get_prefix(self._prefix, deadline=Deadline(self._read_timeout), stop=self._stop)
        self._revision = result.revision
        self._mine = {kv.key: names(self._instance, self._prefix, kv.key, kv.value) for kv in result.kvs}
        self._tell(any(self._mine.values()))

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._read()
                if hasattr(self._client, "watch_in_place"):  # the memory backend delivers in the writer's thread
                    self._watch_in_place()
                    return
                self._watch_once()
                failures = 0
            except Exception as exc:  # a bug, too, must never end the watch silently
                if self._stop.is_set():
                    break
                failures += 1
                if failures == 1:
                    log.warning("watch of maintenance keys %s broke; reconnecting: %s", self._prefix, exc)
                self._stop.wait(self._client.retry.wait_time(failures))

    def _watch_in_place(self) -> None:
        client: Any = self._client
        cancel = client.watch_in_place(self._prefix, self._revision + 1, self._apply, self._read)
        with self._lock:
            self._cancel = cancel
        if self._stop.is_set():
            cancel()

    def _apply(self, batch: WatchBatch) -> bool:
        for event in batch.events:
            if event.deleted:
                self._mine.pop(event.kv.key, None)
            else:
                self._mine[event.kv.key] = names(self._instance, self._prefix, event.kv.key, event.kv.value)
        self._tell(any(self._mine.values()))
        return not self._stop.is_set()

    def _watch_once(self) -> None:
        stream = self._client.watch(self._prefix, self._revision + 1)
        with self._lock:
            self._stream = stream
        try:
            for batch in stream:
                if self._stop.is_set():
                    return
                if batch.canceled:
                    raise RegistryError(f"etcd cancelled the watch of {self._prefix}: {batch.cancel_reason}")
                if batch.compact_revision:
                    return  # read again and watch from there
                self._apply(batch)
                revisions = [ev.kv.mod_revision for ev in batch.events] or [batch.revision]
                self._revision = max(self._revision, *revisions)
        finally:
            stream.cancel()
            with self._lock:
                self._stream = None


def watch_maintenance(registry: Any, instance: Instance,
                      on_change: Callable[[bool], None], *, read_timeout: float = 5.0) -> Optional[MaintenanceWatch]:
    """A started watch of ``instance``'s maintenance key on ``registry``; None for a registry without keys."""
    if not isinstance(registry, LeasedRegistry):
        return None
    watch = MaintenanceWatch(registry._client, maintenance_prefix(registry, instance.service), instance, on_change,
                             thread_name=f"maint-{instance.service}", read_timeout=read_timeout)
    watch.start()
    return watch

