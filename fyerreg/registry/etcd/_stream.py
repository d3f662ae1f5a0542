"""Every watch of one etcd client on one gRPC watch stream, told apart by etcd's watch ids.

A :class:`WatchHub` keeps one bidirectional stream open (on the endpoint in use when
it was opened) and one reader thread, ``fyerreg-etcd-watches``, that hands each
response to the :class:`WatchStream` its watch id names. Each ``WatchStream`` is read
by the thread that opened it, blocking on its own inbox with no timeout: a watch costs
nothing while nothing changes. Creates are sent one at a time and matched to etcd's
``created`` answers in order, as etcd's own client does. When the stream breaks, every
watch on it raises the stream's error (each resumes from its own revision); the next
watch opens a new stream. Cancelling one watch asks etcd to drop only that one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from typing import Any, Callable, Deque, Dict, Iterator, Optional, Tuple, Union

import grpc
from pyetcd import etcdrpc

from ..._threads import join_thread, start_thread
from ...errors import RegistryClosedError, RegistryError, RegistryUnavailableError
from ..kv._ops import WatchBatch
from ._convert import watch_batch, watch_request
from ._endpoints import Conn
from ._errors import EndedCall

__all__ = ["Deliver", "RequestSide", "WatchHub", "WatchStream"]

log = logging.getLogger("fyerreg.registry.etcd")

Translate = Callable[[BaseException, Conn, str], RegistryError]
"""The client's translation of a failed call on a connection into a fyerreg error."""
Metadata = Optional[Tuple[Tuple[str, str], ...]]

_END = object()
"""Put in a queue: the request side closes (the stream's) or the iteration ends (a watch's)."""


class RequestSide:
    """The request side of a long-lived gRPC stream: what is :meth:`put` is sent, in order.

    Iterated by gRPC's sending thread, which blocks on it without a timeout while there is
    nothing to send; the side stays open (closing it ends the stream) until :meth:`close`.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, request: Any) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item


Deliver = Callable[[Union[WatchBatch, RegistryError]], None]
"""Takes each response of a watch (or the stream's error) in the reader thread; must not block."""


class WatchStream:
    """One watch of a key prefix on a shared stream, iterated by the thread that opened it.

    Iterating yields :class:`WatchBatch` until :meth:`cancel` (then it just ends) or until
    the shared stream breaks, which raises a fyerreg error (:class:`RegistryUnavailableError`
    for a lost connection). A watch opened with ``on_deliver`` is not iterated: the reader
    thread hands it each response (and the error) instead.
    """

    def __init__(self, shared: _Shared, request: Any, on_deliver: Optional[Deliver] = None) -> None:
        self._shared = shared
        self.request = request
        self._on_deliver = on_deliver
        self.watch_id: Optional[int] = None
        self._inbox: queue.SimpleQueue[Union[WatchBatch, RegistryError, object]] = queue.SimpleQueue()
        self._cancelled = False

    @property
    def endpoint(self) -> str:
        """The ``host:port`` this watch's stream is connected to."""
        return self._shared.conn.netloc

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled

    def deliver(self, item: Union[WatchBatch, RegistryError]) -> None:
        """Hand a response (or the stream's error) to the reading thread."""
        if self._on_deliver is None:
            self._inbox.put(item)
        elif not self._cancelled:
            try:
                self._on_deliver(item)
            except Exception:  # the reader serves every other watch: it must go on
                log.exception("a watch's delivery failed")

    def __iter__(self) -> Iterator[WatchBatch]:
        while True:
            item = self._inbox.get()
            if item is _END or self._cancelled:
                return
            if isinstance(item, RegistryError):
                raise item
            assert isinstance(item, WatchBatch)
            yield item

    def cancel(self) -> None:
        """End this watch; an iteration in progress stops (idempotent, thread-safe)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._inbox.put(_END)
        self._shared.forget(self)


class _Shared:
    """One open watch stream and the watches on it."""

    def __init__(self, conn: Conn, metadata: Metadata, translate: Translate) -> None:
        self.conn = conn
        self._translate = translate
        self._requests = RequestSide()
        self._lock = threading.Lock()
        self._pending: Deque[WatchStream] = collections.deque()  # creates sent or to send, in order
        self._watches: Dict[int, WatchStream] = {}
        self.broken: Optional[RegistryError] = None
        self._closing = False

        self._call: Optional[Any] = None
        try:
            self._call = conn.watch.Watch(iter(self._requests), metadata=metadata)
        except ValueError as exc:
            raise RegistryUnavailableError(f"cannot watch at {conn.netloc}: {exc}") from None
        self._thread = start_thread("etcd-watches", self._read)

    @property
    def watches(self) -> int:
        """How many watches this stream carries now (created or being created)."""
        with self._lock:
            return len(self._watches) + len(self._pending)

    def add(self, prefix: str, start_revision: int, *, exact: bool = False,
            on_deliver: Optional[Deliver] = None) -> WatchStream:
        """A new watch of ``prefix`` (with ``exact``: of that key alone) from ``start_revision`` on this stream."""
        stream = WatchStream(self, watch_request(prefix, start_revision, exact=exact), on_deliver)
        with self._lock:
            if self.broken is not None:
                raise self.broken
            self._pending.append(stream)
            first = len(self._pending) == 1
        if first:
            self._requests.put(stream.request)
        return stream

    def forget(self, stream: WatchStream) -> None:
        """Ask etcd to drop ``stream``'s watch (once it has an id; else when its create is answered)."""
        with self._lock:
            watch_id = stream.watch_id
            known = watch_id is not None and self._watches.pop(watch_id, None) is stream
        if known and self.broken is None:
            self._requests.put(etcdrpc.WatchRequest(cancel_request=etcdrpc.WatchCancelRequest(watch_id=watch_id)))

    def _read(self) -> None:
        error: Optional[RegistryError] = None
        try:
            for resp in self._call or ():
                self._dispatch(resp)
        except grpc.RpcError as exc:
            ended = EndedCall(exc)  # not the call itself (see EndedCall)
            if not self._closing:
                error = self._translate(ended, self.conn, "watch")
        except Exception as exc:  # a bug must still end every watch on the stream, never leave them silent
            log.exception("reading the etcd watch stream failed")
            error = RegistryUnavailableError(f"reading the watch stream of {self.conn.netloc} failed: {exc}")
        else:
            if not self._closing:
                error = RegistryUnavailableError(f"etcd at {self.conn.netloc} ended the watch stream")
        self._end(error or RegistryClosedError("the etcd client is closed"))
        self._call = None  # freed while every thread runs (see EndedCall)

    def _dispatch(self, resp: Any) -> None:
        batch = watch_batch(resp)
        if batch.created:
            with self._lock:
                stream = self._pending.popleft() if self._pending else None
                following = self._pending[0] if self._pending else None
                if stream is not None and not batch.canceled:
                    stream.watch_id = int(resp.watch_id)
                    self._watches[stream.watch_id] = stream
            if following is not None:
                self._requests.put(following.request)
            if stream is None:
                return
            if batch.canceled:  # etcd refused to create it: the watch reads as cancelled
                stream.deliver(WatchBatch(revision=batch.revision, events=(), created=False, canceled=True,
                                          compact_revision=batch.compact_revision,
                                          cancel_reason=batch.cancel_reason))
            elif stream.cancelled:
                self.forget(stream)
            else:
                stream.deliver(batch)
            return
        with self._lock:
            stream = self._watches.get(int(resp.watch_id))
            if stream is not None and batch.canceled:
                del self._watches[int(resp.watch_id)]
        if stream is not None:
            stream.deliver(batch)

    def _end(self, error: RegistryError) -> None:
        with self._lock:
            self.broken = error
            streams = [*self._pending, *self._watches.values()]
            self._pending.clear()
            self._watches.clear()
        self._requests.close()
        if streams and not isinstance(error, RegistryClosedError):
            log.warning("the etcd watch stream at %s broke; its %d watches resume: %s", self.conn.netloc,
                        len(streams), error, extra={"endpoint": self.conn.netloc})
            error.reported = True  # type: ignore[attr-defined]  # each watch need not say it again
        for stream in streams:
            stream.deliver(error)

    def close(self, timeout: float) -> None:
        """End the stream and every watch on it; join the reader."""
        self._closing = True
        self._requests.close()
        call = self._call
        if call is None:
            return
        try:
            call.cancel()
        except Exception:
            log.debug("cancelling the watch stream failed", exc_info=True)
        if join_thread(self._thread, timeout):
            self._call = None  # freed while every thread runs (see EndedCall)


class WatchHub:
    """The one watch stream of a client: opened by the first watch, again after it broke."""

    def __init__(self, acquire: Callable[[], Conn], metadata: Callable[[], Metadata], translate: Translate) -> None:
        self._acquire = acquire
        self._metadata = metadata
        self._translate = translate
        self._lock = threading.Lock()
        self._shared: Optional[_Shared] = None
        self._closed = False

    def watch(self, prefix: str, start_revision: int, *, exact: bool = False,
              on_deliver: Optional[Deliver] = None) -> WatchStream:
        """Watch every key under ``prefix`` (with ``exact``: the key ``prefix``) from ``start_revision``
        on the shared stream (no retries); ``on_deliver`` takes its responses instead of an iteration."""
        with self._lock:
            if self._closed:
                raise RegistryClosedError("the etcd client is closed")
            shared = self._shared
            if shared is None or shared.broken is not None:
                # Opening a stream sends nothing and waits for nothing: safe under the lock.
                shared = self._shared = _Shared(self._acquire(), self._metadata(), self._translate)
            return shared.add(prefix, start_revision, exact=exact, on_deliver=on_deliver)

    @property
    def streams(self) -> int:
        """How many watch streams are open now (0 or 1)."""
        shared = self._shared
        return int(shared is not None and shared.broken is None)

    @property
    def watches(self) -> int:
        """How many watches the open stream carries."""
        shared = self._shared
        return shared.watches if shared is not None and shared.broken is None else 0

    def close(self, timeout: float) -> None:
        """End the stream and every watch on it (idempotent)."""
        with self._lock:
            self._closed = True
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.close(timeout)
