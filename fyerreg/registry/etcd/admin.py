"""Operator reads and repairs on an :class:`EtcdRegistry`'s namespace, beyond the Registry contract.

What the ``fyerreg`` command needs: every record of the namespace with its lease, the
time left on a lease, and removing a record another process registered.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import InvalidInstanceError
from ...naming import Instance, _check_segment
from ..kv._ops import Compare, Deadline, Delete, Txn
from ..kv._records import lease_hex
from .registry import EtcdRegistry

__all__ = ["InstanceRecord", "list_records", "lease_ttls", "remove"]

log = logging.getLogger("fyerreg.registry.etcd.admin")


@dataclasses.dataclass(frozen=True)
class InstanceRecord:
    """An instance as stored: its ``key``, the ``lease_id`` it is bound to (0 for none:
    such a record never expires, as those the Go registry's UpdateService leaves) and the
    store revision it was last written at."""

    instance: Instance
    key: str
    lease_id: int
    mod_revision: int


def list_records(
    registry: EtcdRegistry,
    service: Optional[str] = None,
    version: Optional[str] = None,
    *,
    timeout: Optional[float] = None,
) -> List[InstanceRecord]:
    """The valid records of ``service`` (of ``version``), or of the whole namespace when
    ``service`` is None, sorted by key. Invalid records are skipped (with a warning)."""
    registry._check_open()
    if service is not None:
        _check_segment("service", service)
    if version is not None:
        if service is None:
            raise ValueError("version needs a service")
        _check_segment("version", version)
    layout = registry._layout
    prefix = layout.root if service is None else layout.prefix(service, version)
    result = registry._client.get_prefix(prefix, deadline=Deadline(timeout))
    records = []
    for kv in result.kvs:
        kv_service = layout.service_of(kv.key) or service or ""
        instance = registry._decoder.decode(kv, kv_service, version)
        if instance is not None:
            records.append(InstanceRecord(instance, kv.key, kv.lease, kv.mod_revision))
    return sorted(records, key=lambda r: r.key)


def lease_ttls(
    registry: EtcdRegistry, records: Sequence[InstanceRecord], *, timeout: Optional[float] = None
) -> Dict[Tuple[str, str, str], Optional[int]]:
    """Seconds left on each record's lease, by ``instance.key``: None when the record has
    no lease, -1 when its lease is gone (the record is about to disappear)."""
    registry._check_open()
    by_lease: Dict[int, int] = {}
    out: Dict[Tuple[str, str, str], Optional[int]] = {}
    for record in records:
        if not record.lease_id:
            out[record.instance.key] = None
            continue
        if record.lease_id not in by_lease:
            by_lease[record.lease_id] = registry._client.time_to_live(record.lease_id, deadline=Deadline(timeout))
        out[record.instance.key] = by_lease[record.lease_id]
    return out


def remove(
    registry: EtcdRegistry, service: str, version: str, id: str, *, timeout: Optional[float] = None
) -> Optional[InstanceRecord]:
    """Delete the record of (``service``, ``version``, ``id``) and revoke its lease.

    Returns the record removed, or None when there was none. Only the record read is
    deleted (a concurrent rewrite wins). A process still running notices its lease is
    gone and registers again: stop the process to take an instance out for good.
    """
    for field, value in (("service", service), ("version", version), ("id", id)):
        _check_segment(field, value)
    registry._check_open()
    key = f"{registry._layout.prefix(service, version)}{id}"
    _, kv = registry._client.get(key, deadline=Deadline(timeout))
    if kv is None:
        return None
    try:
        instance = registry._layout.decode(kv.key, kv.value)
    except InvalidInstanceError:
        instance = Instance(id=id, service=service, version=version, address="invalid:1")
    guarded = Txn([Compare(key, "mod", kv.mod_revision)], [Delete(key)], [])
    result = registry._client.txn(guarded, deadline=Deadline(timeout))
    if not result.succeeded:
        return None
    if kv.lease:
        registry._client.revoke(kv.lease, deadline=Deadline(timeout))
    log.info("removed %s (lease %x) by operator request", key, kv.lease,
                extra={"service": service, "version": version, "instance_id": id, "lease_id": lease_hex(kv.lease)})
    return InstanceRecord(instance, key, kv.lease, kv.mod_revision)
