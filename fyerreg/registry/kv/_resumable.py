"""A watch of one key prefix, on a thread of its own, that resumes without missing a change.

What is watched was read at revision R and is watched from R+1, so nothing between the
read and the watch is lost. A compacted start revision, a store that went back before R
(restored or wiped) and a broken stream make the thread read again at R' and watch from
R'+1; a broken stream (or etcd cancelling the watch) after a backoff. What is read and
what a response does is the subclass's: a service's instances
(:class:`~._watch.PrefixWatch`) or the services of a namespace
(:class:`~fyerreg.registry.etcd.namespace.ServiceNames`).
"""

from __future__ import annotations

import logging
import threading
from typing import Dict, Optional

from ..._threads import join_thread, start_thread
from ...errors import RegistryError
from ...metrics import Metrics
from ...retry import Retry
from ._ops import WatchBatch
from ._surface import KVClient, KVStream

__all__ = ["ResumableWatch"]

log = logging.getLogger("fyerreg.registry.etcd")


class _Resync(Exception):
    """What is watched must be read again (a compacted start revision, a rolled-back store)."""


class _Cancelled(Exception):
    """etcd ended the watch (no leader, permissions changed): resume it after a backoff."""


class ResumableWatch:
    """The thread, the stream and the resume rules of one watch of ``prefix`` (subclassed).

    A subclass reads what it watches in :meth:`_resynced` (setting ``_revision``) and
    applies each response's events in :meth:`_apply`; either returns False when the
    consumer is gone, which ends the watch. ``metrics`` (optional) counts compaction
    recoveries and reconnects.
    """

    def __init__(self, client: KVClient, prefix: str, *, retry: Retry, thread_name: str,
                 metrics: Optional[Metrics] = None) -> None:
        self.client = client
        self.prefix = prefix
        self.retry = retry
        self.thread_name = thread_name
        self._counts = metrics
        self._revision = 0
        self._connected = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._updated = threading.Condition(self._lock)
        self._stream: Optional[KVStream] = None
        self._thread: Optional[threading.Thread] = None

    # -- what a subclass does -------------------------------------------------------------------

    def _resynced(self, reason: str) -> bool:
        """Read what is watched again after ``reason`` ("compacted", "rolled back", "reconnect")."""
        raise NotImplementedError

    def _apply(self, batch: WatchBatch) -> bool:
        """Apply one response's events (or a progress notification's revision)."""
        raise NotImplementedError

    def _extra(self, **more: object) -> Dict[str, object]:
        """The fields of this watch's log records."""
        return dict(more)

    def _set_connected(self, connected: bool) -> None:
        with self._updated:
            self._connected = connected
            self._updated.notify_all()

    # -- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching from the revision read + 1."""
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

    def _count(self, name: str) -> None:
        if self._counts is not None:
            self._counts.inc(name)

    def _run(self) -> None:
        failures = 0
        resync: Optional[str] = None
        while not self._stop.is_set():
            try:
                if resync is not None:
                    if not self._resynced(resync):
                        break
                    resync = None
                self._watch_once(failures)
                failures = 0
            except _Resync as exc:
                resync = str(exc)
            except Exception as exc:  # a bug, too, must never end the watch silently
                if self._stop.is_set():
                    break
                # Read again before watching: resuming from the last revision would miss
                # everything if etcd came back wiped or restored from a snapshot whose
                # revisions have since passed it.
                resync = "reconnect"
                failures += 1
                self._set_connected(False)
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
        if batch.compact_revision:
            self._count("compaction_recoveries")
            log.warning("watch of %s: revision %d is compacted (oldest kept: %d); reading it again",
                        self.prefix, self._revision + 1, batch.compact_revision, extra=self._extra())
            raise _Resync("compacted")
        if batch.created:
            if batch.revision < self._revision:
                log.warning("etcd at revision %d went back before %d (restored or wiped); reading %s again",
                            batch.revision, self._revision, self.prefix,
                            extra=self._extra(endpoint=stream.endpoint))
                raise _Resync("rolled back")
            self._set_connected(True)
            if failures:
                self._count("watch_reconnects")
                log.info("watch of %s resumed at revision %d", self.prefix, self._revision + 1,
                         extra=self._extra(endpoint=stream.endpoint, attempt=failures))
            return True
        if batch.canceled:
            raise _Cancelled(f"etcd cancelled the watch of {self.prefix}: {batch.cancel_reason or 'no reason given'}")
        return self._apply(batch)
