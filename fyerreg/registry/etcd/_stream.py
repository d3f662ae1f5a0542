"""One gRPC watch stream of a key prefix, driven by the thread that iterates it."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator, Optional, Tuple

import grpc

from ...errors import RegistryError, RegistryUnavailableError
from ..kv._ops import WatchBatch
from ._convert import watch_batch, watch_request
from ._endpoints import Conn

__all__ = ["WatchStream"]

log = logging.getLogger("fyerreg.registry.etcd")

Translate = Callable[[BaseException, Conn, str], RegistryError]
"""The client's translation of a failed call on a connection into a fyerreg error."""


class WatchStream:
    """One gRPC watch stream of a key prefix, iterated by the caller's thread.

    Iterating yields :class:`WatchBatch` until :meth:`cancel` (then it just ends)
    or until the stream breaks, which raises a fyerreg error
    (:class:`RegistryUnavailableError` for a lost connection).
    """

    def __init__(self, conn: Conn, metadata: Optional[Tuple[Tuple[str, str], ...]], translate: Translate,
                 prefix: str, start_revision: int) -> None:
        self._conn = conn
        self._translate = translate
        self._cancelled = threading.Event()
        first = watch_request(prefix, start_revision)

        def requests() -> Iterator[Any]:
            yield first
            # Keep the request side open (closing it ends the stream) until cancelled.
            self._cancelled.wait()

        try:
            self._call = conn.watch.Watch(requests(), metadata=metadata)
        except ValueError as exc:
            self._cancelled.set()
            raise RegistryUnavailableError(f"cannot watch at {conn.netloc}: {exc}") from None

    @property
    def endpoint(self) -> str:
        """The ``host:port`` this stream is connected to."""
        return self._conn.netloc

    def __iter__(self) -> Iterator[WatchBatch]:
        error: Optional[RegistryError] = None
        try:
            for resp in self._call:
                yield watch_batch(resp)
        except grpc.RpcError as exc:
            if not self._cancelled.is_set():
                error = self._translate(exc, self._conn, "watch")
        else:
            if not self._cancelled.is_set():
                error = RegistryUnavailableError(f"etcd at {self._conn.netloc} ended the watch stream")
        finally:
            self.cancel()
        if error is not None:
            raise error

    def cancel(self) -> None:
        """End the stream; an iteration in progress stops (idempotent, thread-safe)."""
        self._cancelled.set()
        try:
            self._call.cancel()
        except Exception:
            log.debug("cancelling a watch failed", exc_info=True)
