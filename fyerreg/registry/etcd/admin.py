"""Operator reads and repairs on an :class:`EtcdRegistry`'s namespace, beyond the Registry contract.

What the ``fyerreg`` command needs: every record of the namespace with its lease, the
time left on a lease, removing a record another process registered, and for ``fyerreg
doctor`` the keys that are no valid record, how many records another layout would read,
and the lease TTL etcd actually grants.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import InvalidInstanceError
from ...naming import Instance, _check_segment
from ..kv._ops import Compare, Deadline, Delete, Txn
from ..kv._records import lease_hex
from ..layouts import Layout
from .registry import EtcdRegistry

__all__ = ["InstanceRecord", "NamespaceScan", "list_records", "lease_ttls", "remove", "scan_namespace",
           "count_records", "granted_ttl", "current_endpoint"]

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


@dataclasses.dataclass(frozen=True)
class NamespaceScan:
    """Every key under the registry's layout root: the valid ``records`` (sorted by key) and
    the ``invalid`` ones as ``(key, why)``, read at store ``revision``."""

    records: List[InstanceRecord]
    invalid: List[Tuple[str, str]]
    revision: int


def scan_namespace(registry: EtcdRegistry, *, timeout: Optional[float] = None) -> NamespaceScan:
    """Read every key under the layout's root once and sort valid records from invalid ones (nothing is logged)."""
    registry._check_open()
    layout = registry._layout
    result = registry._client.get_prefix(layout.root, deadline=Deadline(timeout))
    records: List[InstanceRecord] = []
    invalid: List[Tuple[str, str]] = []
    for kv in result.kvs:
        try:
            instance = layout.decode(kv.key, kv.value)
        except InvalidInstanceError as exc:
            invalid.append((kv.key, str(exc)))
            continue
        records.append(InstanceRecord(instance, kv.key, kv.lease, kv.mod_revision))
    return NamespaceScan(sorted(records, key=lambda r: r.key), sorted(invalid), result.revision)


def count_records(registry: EtcdRegistry, layout: Layout, *, timeout: Optional[float] = None) -> int:
    """How many keys under ``layout``'s root are valid records of that layout (read with this registry's client)."""
    registry._check_open()
    result = registry._client.get_prefix(layout.root, deadline=Deadline(timeout))
    count = 0
    for kv in result.kvs:
        try:
            layout.decode(kv.key, kv.value)
        except InvalidInstanceError:
            continue
        count += 1
    return count


def granted_ttl(registry: EtcdRegistry, ttl: int, *, timeout: Optional[float] = None) -> int:
    """The TTL etcd grants a lease asked for ``ttl`` seconds (it raises one below its minimum); revoked at once."""
    registry._check_open()
    return registry._client.granted_ttl(ttl, deadline=Deadline(timeout))


def current_endpoint(registry: EtcdRegistry) -> Tuple[str, bool]:
    """The ``host:port`` of the etcd member calls go to now, and whether it is reached over TLS."""
    options = registry.options
    netloc = registry._client.endpoint
    for endpoint in options.endpoints:
        if endpoint.netloc == netloc:
            return netloc, options.endpoint_is_secure(endpoint)
    return netloc, options.tls is not None  # a member learnt from the cluster

