"""Every lease refresh of one etcd client on one long-lived LeaseKeepAlive stream.

etcd's own clients keep one keepalive stream open and send each refresh on it; a
stream per refresh costs a stream set-up and a gRPC sender thread each time, and
etcd's grpc-proxy cancels such one-request streams ("context canceled"). Each
caller sends its lease id and waits (bounded by its timeout) for the answer etcd
gives for that id, which the reader thread ``fyerreg-etcd-keepalives`` hands over. A
stream that breaks, or answers nothing at all for as long as a refresh's timeout, is
dropped: its callers get the error and the next refresh opens a new one. A refresh left
unanswered on a stream that answers others (etcd slow, not gone) fails alone, and its
late answer is dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import grpc
from pyetcd import etcdrpc

from ..._threads import join_thread, start_thread
from ...errors import RegistryClosedError, RegistryUnavailableError
from ._endpoints import Conn
from ._errors import EndedCall
from ._stream import RequestSide

__all__ = ["KeepAliveStream"]

log = logging.getLogger("fyerreg.registry.etcd")

Metadata = Optional[Tuple[Tuple[str, str], ...]]


class _Waiter:
    __slots__ = ("done", "ttl", "error", "abandoned")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ttl = 0
        self.error: Optional[BaseException] = None
        self.abandoned = False  # its caller gave up: the answer, when it comes, is dropped


class _Shared:
    """One open keepalive stream on one connection and the refreshes waiting for its answers."""

    def __init__(self, conn: Conn, metadata: Metadata) -> None:
        self.conn = conn
        self._requests = RequestSide()
        self._lock = threading.Lock()
        self._waiting: Dict[int, Deque[_Waiter]] = {}
        self.broken: Optional[BaseException] = None
        self._closing = False
        self.last_answer = time.monotonic()

        self._call: Optional[Any] = conn.lease.LeaseKeepAlive(iter(self._requests), metadata=metadata)
        self._thread = start_thread("etcd-keepalives", self._read)

    def send(self, lease_id: int) -> _Waiter:
        waiter = _Waiter()
        with self._lock:
            if self.broken is not None:
                raise self.broken
            self._waiting.setdefault(lease_id, collections.deque()).append(waiter)
        self._requests.put(etcdrpc.LeaseKeepAliveRequest(ID=lease_id))
        return waiter

    def give_up(self, waiter: _Waiter, *, silent_for: float) -> bool:
        """``waiter``'s caller stops waiting; True when the stream has answered nothing for
        ``silent_for`` seconds (it is stuck: end it). An answer still on its way is dropped."""
        with self._lock:
            waiter.abandoned = True
            return time.monotonic() - self.last_answer >= silent_for

    def _read(self) -> None:
        error: BaseException
        try:
            for resp in self._call or ():
                with self._lock:
                    self.last_answer = time.monotonic()
                    waiters = self._waiting.get(int(resp.ID))
                    waiter = waiters.popleft() if waiters else None
                    if waiters is not None and not waiters:
                        del self._waiting[int(resp.ID)]
                    if waiter is not None and not waiter.abandoned:
                        waiter.ttl = int(resp.TTL)
                        waiter.done.set()
        except grpc.RpcError as exc:
            error = EndedCall(exc)  # raised in the refreshing thread, where the client classifies it
        except Exception as exc:  # a bug must not leave the waiters hanging until their timeouts
            log.exception("reading the etcd lease keepalive stream failed")
            error = RegistryUnavailableError(f"reading the keepalive stream of {self.conn.netloc} failed: {exc}")
        else:
            error = RegistryUnavailableError(f"etcd at {self.conn.netloc} ended the lease keepalive stream")
        if self._closing:
            error = RegistryClosedError("the etcd client is closed")
        self.end(error)
        self._call = None  # freed while every thread runs (see EndedCall)

    def end(self, error: BaseException) -> None:
        """Fail every refresh waiting on this stream with ``error``; later ones open a new stream."""
        with self._lock:
            if self.broken is None:
                self.broken = error
            waiting: List[_Waiter] = [w for ws in self._waiting.values() for w in ws]
            self._waiting.clear()
        self._requests.close()
        call = self._call
        try:
            if call is not None:
                call.cancel()
        except Exception:
            log.debug("cancelling the keepalive stream failed", exc_info=True)
        for waiter in waiting:
            waiter.error = error
            waiter.done.set()

    def close(self, timeout: float) -> None:
        self._closing = True
        self.end(RegistryClosedError("the etcd client is closed"))
        if join_thread(self._thread, timeout):
            self._call = None  # freed while every thread runs (see EndedCall)


class KeepAliveStream:
    """The one lease keepalive stream of a client: opened by the first refresh, again after it broke."""

    def __init__(self, metadata: Callable[[], Metadata]) -> None:
        self._metadata = metadata
        self._lock = threading.Lock()
        self._shared: Optional[_Shared] = None
        self._closed = False

    def refresh(self, conn: Conn, lease_id: int, timeout: float) -> int:
        """Refresh ``lease_id`` through ``conn``; its remaining TTL (0: etcd no longer knows it).

        Raises the stream's ``grpc.RpcError`` when it broke, and RegistryUnavailableError
        when no answer came within ``timeout``.
        """
        with self._lock:
            if self._closed:
                raise RegistryClosedError("the etcd client is closed")
            shared = self._shared
            if shared is None or shared.broken is not None or shared.conn is not conn:
                old, shared = shared, _Shared(conn, self._metadata())  # opening sends and waits for nothing
                self._shared = shared
                if old is not None:
                    old.end(RegistryUnavailableError(f"the keepalive stream moved to {conn.netloc}"))
        waiter = shared.send(lease_id)
        if not waiter.done.wait(timeout):
            unanswered = RegistryUnavailableError(
                f"etcd lease keepalive at {conn.netloc} failed: no answer within {timeout:.1f}s")
            stuck = shared.give_up(waiter, silent_for=timeout)
            if not waiter.done.is_set():  # (set before give_up took the lock: answered after all)
                if stuck:
                    shared.end(unanswered)  # not a word from the stream meanwhile
                raise unanswered
        if waiter.error is not None:
            raise waiter.error
        return waiter.ttl

    def close(self, timeout: float) -> None:
        """End the stream; refreshes waiting on it raise RegistryClosedError (idempotent)."""
        with self._lock:
            self._closed = True
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.close(timeout)
