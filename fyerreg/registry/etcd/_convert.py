"""Conversion between the client's values (``_ops``) and etcd's protobuf messages.

Requests are built from the values and responses read back into them here only;
no call is made and no connection is known.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import pyetcd
from pyetcd import etcdrpc

from ..kv._ops import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    OpResult,
    Put,
    RangeResult,
    Txn,
    TxnResult,
    WatchBatch,
    WatchEvent,
)

__all__ = [
    "encode",
    "prefix_end",
    "range_request",
    "prefix_request",
    "txn_request",
    "watch_request",
    "key_value",
    "range_result",
    "txn_result",
    "watch_batch",
]

_COMPARE_TARGETS = {
    "lease": (etcdrpc.Compare.LEASE, "lease"),
    "mod": (etcdrpc.Compare.MOD, "mod_revision"),
    "create": (etcdrpc.Compare.CREATE, "create_revision"),
}


def encode(text: str) -> bytes:
    """A key as etcd stores it."""
    return text.encode("utf-8")


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes a range of ``prefix`` cover every key under it."""
    return bytes(pyetcd.utils.prefix_range_end(prefix))


def prefix_range(prefix: str) -> Tuple[bytes, bytes]:
    """The key and range end covering every key under ``prefix``; ``""`` (a layout whose keys share no
    root) covers every key, which etcd spells ``\\0`` to ``\\0``."""
    key = encode(prefix)
    return (key, prefix_end(key)) if key else (b"\0", b"\0")


def range_request(key: str) -> Any:
    """A read of one key."""
    return etcdrpc.RangeRequest(key=encode(key))


def prefix_request(prefix: str, *, count_only: bool = False) -> Any:
    """A read of every key under ``prefix`` (only their number with ``count_only``)."""
    key, end = prefix_range(prefix)
    return etcdrpc.RangeRequest(key=key, range_end=end, count_only=count_only)


def _compare(cmp: Compare) -> Any:
    target, field = _COMPARE_TARGETS[cmp.target]
    msg = etcdrpc.Compare(key=encode(cmp.key), result=etcdrpc.Compare.EQUAL, target=target)
    setattr(msg, field, cmp.value)
    return msg


def txn_request(txn: Txn) -> Any:
    """The TxnRequest of ``txn``."""
    return etcdrpc.TxnRequest(
        compare=[_compare(c) for c in txn.compare],
        success=[_op(op) for op in txn.success],
        failure=[_op(op) for op in txn.failure],
    )


def _op(op: Op) -> Any:
    if isinstance(op, Put):
        return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(
            key=encode(op.key), value=op.value, lease=op.lease, prev_kv=True))
    if isinstance(op, Delete):
        return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=encode(op.key)))
    if isinstance(op, Get):
        return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=encode(op.key)))
    return etcdrpc.RequestOp(request_txn=txn_request(op))


def watch_request(prefix: str, start_revision: int, *, exact: bool = False) -> Any:
    """The request that creates a watch of every key under ``prefix`` from ``start_revision``
    (with ``exact``: of the key ``prefix`` alone, with no progress notifications)."""
    key, end = (encode(prefix), b"") if exact else prefix_range(prefix)
    create = etcdrpc.WatchCreateRequest(key=key, range_end=end, start_revision=start_revision,
                                        progress_notify=not exact)
    return etcdrpc.WatchRequest(create_request=create)


def key_value(kv: Any) -> KeyValue:
    """The KeyValue of an ``mvccpb.KeyValue``."""
    return KeyValue(
        # Lossless: a key that is not UTF-8 must not read as the key of a valid record
        # (b"\xff" would read as the key of id "\ufffd" with errors="replace").
        key=bytes(kv.key).decode("utf-8", errors="surrogateescape"),
        value=bytes(kv.value),
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        lease=kv.lease,
    )


def range_result(resp: Any) -> RangeResult:
    """The keys of a RangeResponse and the revision they were read at."""
    return RangeResult(resp.header.revision, tuple(key_value(kv) for kv in resp.kvs))


def txn_result(resp: Any, revision: int) -> TxnResult:
    """The TxnResult of a TxnResponse (nested ones carry the outer ``revision``)."""
    results: List[OpResult] = []
    for item in resp.responses:
        kind = item.WhichOneof("response")
        if kind == "response_put":
            prev = item.response_put.prev_kv
            results.append(key_value(prev) if item.response_put.HasField("prev_kv") else None)
        elif kind == "response_delete_range":
            results.append(int(item.response_delete_range.deleted))
        elif kind == "response_range":
            kvs = item.response_range.kvs
            results.append(key_value(kvs[0]) if kvs else None)
        else:
            results.append(txn_result(item.response_txn, revision))
    return TxnResult(succeeded=bool(resp.succeeded), revision=revision, results=tuple(results))


def watch_batch(resp: Any) -> WatchBatch:
    """The WatchBatch of a WatchResponse."""
    events = tuple(WatchEvent(deleted=ev.type == 1, kv=key_value(ev.kv)) for ev in resp.events)
    return WatchBatch(
        revision=resp.header.revision,
        events=events,
        created=bool(resp.created),
        canceled=bool(resp.canceled),
        compact_revision=resp.compact_revision,
        cancel_reason=resp.cancel_reason,
    )
