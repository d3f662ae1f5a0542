"""The values the etcd client takes and returns: keys read, transactions, watch batches.

Plain frozen values with no gRPC or pyetcd in them, so the code above the client
(records, keepalive, watch threads, admin) reads and builds etcd operations without
knowing the wire; ``fyerreg.registry.etcd._convert`` turns them into etcd's messages and
back, and the memory backend's store runs them itself.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Sequence, Tuple, Union

__all__ = [
    "Deadline",
    "KeyValue",
    "RangeResult",
    "Compare",
    "Put",
    "Delete",
    "Get",
    "Txn",
    "Op",
    "OpResult",
    "TxnResult",
    "WatchEvent",
    "WatchBatch",
]


class Deadline:
    """The instant by which an operation (all its calls and retries) must be done.

    Made from the ``seconds`` it allows from now (None: no limit); ``monotonic`` is
    that instant as a ``time.monotonic()`` value (None: no limit).
    """

    __slots__ = ("monotonic", "seconds")

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.monotonic = None if seconds is None else time.monotonic() + seconds

    def left(self) -> Optional[float]:
        """Seconds left (at least a millisecond: a call still gets its one attempt), None when unlimited."""
        return None if self.monotonic is None else max(self.monotonic - time.monotonic(), 0.001)

    def passed(self) -> bool:
        """Whether the instant has come."""
        return self.monotonic is not None and time.monotonic() >= self.monotonic


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One key as stored in etcd."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclasses.dataclass(frozen=True)
class RangeResult:
    """The keys read and the store revision they were read at."""

    revision: int
    kvs: Tuple[KeyValue, ...]


@dataclasses.dataclass(frozen=True)
class Compare:
    """A transaction guard: ``target`` of ``key`` (``lease``, ``mod`` or ``create``) equals ``value``.

    A missing key compares as 0 for every target.
    """

    key: str
    target: str
    value: int


@dataclasses.dataclass(frozen=True)
class Put:
    """Write ``value`` at ``key`` bound to ``lease`` (0: no lease); the result is the previous KeyValue."""

    key: str
    value: bytes
    lease: int = 0


@dataclasses.dataclass(frozen=True)
class Delete:
    """Delete ``key``; the result is the number of keys deleted."""

    key: str


@dataclasses.dataclass(frozen=True)
class Get:
    """Read ``key``; the result is its KeyValue or None."""

    key: str


@dataclasses.dataclass(frozen=True)
class Txn:
    """A nested transaction; the result is its TxnResult."""

    compare: Sequence[Compare]
    success: Sequence[Op] = ()
    failure: Sequence[Op] = ()


Op = Union[Put, Delete, Get, Txn]
OpResult = Union[Optional[KeyValue], int, "TxnResult"]


@dataclasses.dataclass(frozen=True)
class TxnResult:
    """Whether the guards held, the store revision after the transaction, one result per op run."""

    succeeded: bool
    revision: int
    results: Tuple[OpResult, ...]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """A put or delete of one key."""

    deleted: bool
    kv: KeyValue


@dataclasses.dataclass(frozen=True)
class WatchBatch:
    """One watch response: its events share the store revision ``revision``.

    ``created`` marks the first response of a stream (``revision`` is then the
    store's current revision); a non-zero ``compact_revision`` means the start
    revision was compacted and the stream is over; ``canceled`` that the server
    ended the watch (``cancel_reason``).
    """

    revision: int
    events: Tuple[WatchEvent, ...]
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
