"""The small etcd surface the registration and watch code calls, with no gRPC in it.

:class:`~fyerreg.registry.etcd._client.EtcdClient` speaks it to a real etcd; the memory backend's client
speaks it to an in-process store, so both backends run one registration state machine
(``_registration``, ``_records``) and one watch (``_watch``).
"""

from __future__ import annotations

import threading
from typing import Iterator, Optional, Protocol, Tuple

from ...errors import RegistryError
from ...retry import Retry
from ._ops import Deadline, KeyValue, RangeResult, Txn, TxnResult, WatchBatch

__all__ = ["KVClient", "KVStream", "LeaseNotFoundError"]


class LeaseNotFoundError(RegistryError):
    """etcd does not know the lease (it expired, was revoked, or the data was wiped)."""


class KVStream(Protocol):
    """One watch of a key prefix, iterated by the thread that opened it."""

    @property
    def endpoint(self) -> str:
        """Where the stream is connected (for log lines)."""

    def __iter__(self) -> Iterator[WatchBatch]:
        """Watch responses until :meth:`cancel` (then it ends) or a break (a RegistryError)."""

    def cancel(self) -> None:
        """End the stream; an iteration in progress stops (idempotent, thread-safe)."""


class KVClient(Protocol):
    """Keys, transactions, leases and watches, every call raising only fyerreg errors."""

    retry: Retry

    def get_prefix(self, prefix: str, *, deadline: Optional[Deadline] = None,
                   stop: Optional[threading.Event] = None) -> RangeResult:
        """Every key under ``prefix`` and the revision of the read."""

    def get(self, key: str, *, deadline: Optional[Deadline] = None,
            retry: Optional[Retry] = None) -> Tuple[int, Optional[KeyValue]]:
        """The store revision and ``key``'s KeyValue (None when absent)."""

    def txn(self, txn: Txn, *, deadline: Optional[Deadline] = None) -> TxnResult:
        """Run a transaction; LeaseNotFoundError when a put names an unknown lease."""

    def grant(self, ttl: float, *, deadline: Optional[Deadline] = None) -> int:
        """A new lease of ``ttl`` seconds; its id."""

    def refresh(self, lease_id: int, *, deadline: Optional[Deadline] = None, retry: Optional[Retry] = None) -> int:
        """Refresh a lease; its remaining TTL, 0 when the store no longer knows it."""

    def revoke(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> bool:
        """Revoke a lease (its keys go with it); False when it was already gone."""

    def time_to_live(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> int:
        """Seconds left on a lease; -1 when the store does not know it."""

    def watch(self, prefix: str, start_revision: int) -> KVStream:
        """Open a watch of every key under ``prefix`` from ``start_revision``."""

    def close(self) -> None:
        """End every call in flight and every stream (idempotent)."""
