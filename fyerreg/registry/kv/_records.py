"""Writing and removing instance records bound to leases, without clobbering another owner's key.

Every write is an etcd transaction guarded on the key's lease: a key that another
registry took over (same id, its own lease) is never overwritten nor deleted by us.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, Optional, Tuple

from ..._log import instance_extra as log_fields
from ...errors import AlreadyRegisteredError, RegistryError
from ...naming import Instance
from ..layouts import Layout
from ._ops import Compare, Deadline, Delete, Get, KeyValue, Put, Txn, TxnResult
from ._spare import SpareLease
from ._surface import KVClient

__all__ = ["RecordWriter", "WriteOutcome", "cleanup_deadline", "instance_extra", "lease_hex"]

log = logging.getLogger("fyerreg.registry.etcd")


def instance_extra(instance: Instance, lease_id: Optional[int] = None, **more: Any) -> Dict[str, Any]:
    """The structured log fields of an instance (``fyerreg._log``'s) and of its lease.

    Lease ids are written in hex, as in the messages and as etcdctl prints them, so one
    search finds a lease in both.
    """
    extra: Dict[str, Any] = dict(log_fields(instance))
    if lease_id is not None:
        extra["lease_id"] = lease_hex(lease_id)
    for name, value in more.items():
        extra[name] = lease_hex(value) if name.endswith("lease_id") and isinstance(value, int) else value
    return extra


def lease_hex(lease_id: int) -> str:
    """A lease id as etcd's tools print it."""
    return f"{lease_id:x}"


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    """``written`` True when the record now holds our value; else ``holder`` is the other owner's key."""

    written: bool
    revision: int
    holder: Optional[KeyValue] = None
    previous: Optional[KeyValue] = None


CLEANUP_TIMEOUT = 2.0
"""Most seconds given to revoking a lease we no longer need (it expires by itself anyway)."""
CLEANUP_FLOOR = 0.25
"""Least seconds given to it once the call's own timeout has run out: a small overrun, not a wait."""


def cleanup_deadline(deadline: Optional[Deadline]) -> Deadline:
    """The deadline for cleaning up after a call bounded by ``deadline``: what is left of it,
    kept within [CLEANUP_FLOOR, CLEANUP_TIMEOUT] seconds, so a call with a timeout still keeps to it."""
    left = None if deadline is None else deadline.left()
    return Deadline(CLEANUP_TIMEOUT if left is None else min(CLEANUP_TIMEOUT, max(CLEANUP_FLOOR, left)))


def _now_ms() -> int:
    return int(time.time() * 1000)


class RecordWriter:
    """Lease and record operations of a :class:`~._registration.Registration`.

    With ``spare`` new leases come from it (one granted ahead of time), else each is granted
    when needed.
    """

    def __init__(self, client: KVClient, layout: Layout, ttl: float, spare: Optional[SpareLease] = None) -> None:
        self.client = client
        self.layout = layout
        self.ttl = ttl
        self.spare = spare

    def _new_lease(self, deadline: Optional[Deadline]) -> int:
        if self.spare is not None:
            return self.spare.take(deadline=deadline)
        return self.client.grant(self.ttl, deadline=deadline)

    def key_of(self, instance: Instance, lease_id: int) -> str:
        """The key of ``instance``'s record bound to ``lease_id``. Where the layout's keys name the
        lease and there is none yet (0), a name for messages only, no key."""
        if lease_id or not self.layout.lease_in_key:
            return self.layout.instance_key(instance, lease_id)
        return f"{self.layout.prefix(instance.service, instance.version)}<lease of {instance.id}>"

    def stamp(self, instance: Instance) -> Tuple[Instance, bytes]:
        """The instance as written now (``updated_at`` set) and its wire bytes."""
        stamped = instance.replace(updated_at=_now_ms())
        return stamped, self.layout.encode(stamped)

    def revoke_quietly(self, lease_id: int, deadline: Optional[Deadline]) -> None:
        """Revoke a lease, logging (not raising) failures: an unrevoked lease expires anyway."""
        if not lease_id:
            return
        try:
            self.client.revoke(lease_id, deadline=deadline)
        except RegistryError as exc:
            log.info("could not revoke lease %x (it expires by itself): %s", lease_id, exc,
                     extra={"lease_id": lease_id})

    def create(self, instance: Instance, *, exclusive: bool,
               deadline: Optional[Deadline]) -> Tuple[int, Instance, WriteOutcome]:
        """Grant a lease and write the record bound to it.

        ``exclusive``: only when the key is absent, else AlreadyRegisteredError with
        nothing written. Otherwise another holder is taken over (the outcome's
        ``previous`` names it).
        """
        lease_id = self._new_lease(deadline)
        key = self.key_of(instance, lease_id)
        try:
            stamped, value = self.stamp(instance)
            if exclusive:
                result = self.client.txn(
                    Txn([Compare(key, "create", 0)], [Put(key, value, lease_id)], [Get(key)]), deadline=deadline)
                holder = None if result.succeeded else _kv(result, 0)
                # A retried transaction may find our own first attempt: that is a success.
                if holder is not None and holder.lease != lease_id:
                    raise AlreadyRegisteredError(
                        f"{key} is already registered (held by lease {holder.lease:x}); "
                        "exclusive=True leaves it alone"
                    )
                outcome = WriteOutcome(True, result.revision)
            else:
                result = self.client.txn(Txn([], [Put(key, value, lease_id)], []), deadline=deadline)
                previous = _kv(result, 0)
                if previous is not None and previous.lease == lease_id:
                    previous = None
                outcome = WriteOutcome(True, result.revision, previous=previous)
        except BaseException:
            self.revoke_quietly(lease_id, deadline=cleanup_deadline(deadline))
            raise
        return lease_id, stamped, outcome

    def guarded_put(self, key: str, value: bytes, *, owner_lease: int, put_lease: int,
                    deadline: Optional[Deadline]) -> WriteOutcome:
        """Write ``value`` bound to ``put_lease`` if the key is absent, lease-less or bound to
        ``owner_lease``; else leave it and return its holder. Raises LeaseNotFoundError
        when ``put_lease`` is gone."""
        txn = Txn(
            [Compare(key, "lease", owner_lease)],
            [Put(key, value, put_lease)],
            [Txn([Compare(key, "lease", 0)], [Put(key, value, put_lease)], [Get(key)])],
        )
        result = self.client.txn(txn, deadline=deadline)
        if result.succeeded:
            return WriteOutcome(True, result.revision, previous=_kv(result, 0))
        nested = result.results[0]
        assert isinstance(nested, TxnResult)
        if nested.succeeded:
            return WriteOutcome(True, result.revision, previous=_kv(nested, 0))
        holder = _kv(nested, 0)
        if holder is not None and holder.lease == put_lease:
            return WriteOutcome(True, result.revision)  # our own retried write
        return WriteOutcome(False, result.revision, holder=holder)

    def rewrite(self, key: str, instance: Instance, lease_id: int, *,
                deadline: Optional[Deadline]) -> Tuple[Instance, WriteOutcome]:
        """Write ``instance`` again under ``lease_id`` (:meth:`guarded_put`); the instance as written."""
        stamped, value = self.stamp(instance)
        return stamped, self.guarded_put(key, value, owner_lease=lease_id, put_lease=lease_id, deadline=deadline)

    def replace_lease(self, key: str, instance: Instance, old_lease: int, *,
                      deadline: Optional[Deadline]) -> Tuple[int, Instance, WriteOutcome]:
        """Grant a new lease and write ``instance`` bound to it where ``old_lease`` held ``key``
        (:meth:`guarded_put`), or, where the key names the lease, at the new lease's key, deleting
        ``key`` while still ``old_lease``'s; the new lease is revoked again when nothing was written."""
        new = self._new_lease(deadline)
        try:
            stamped, value = self.stamp(instance)
            new_key = self.key_of(instance, new)
            if new_key == key:
                outcome = self.guarded_put(key, value, owner_lease=old_lease, put_lease=new, deadline=deadline)
            else:
                outcome = self._move(key, new_key, value, old_lease=old_lease, new_lease=new, deadline=deadline)
        except BaseException:
            self.revoke_quietly(new, deadline=cleanup_deadline(deadline))
            raise
        if not outcome.written:
            self.revoke_quietly(new, deadline=cleanup_deadline(deadline))
        return new, stamped, outcome

    def _move(self, old_key: str, new_key: str, value: bytes, *, old_lease: int, new_lease: int,
              deadline: Optional[Deadline]) -> WriteOutcome:
        """Write ``value`` at ``new_key`` (a key no one else writes: it names our new lease) and delete
        ``old_key`` while bound to ``old_lease``, in one transaction."""
        drop_old = Txn([Compare(old_key, "lease", old_lease)], [Delete(old_key)], [])
        result = self.client.txn(
            Txn([Compare(new_key, "create", 0)], [Put(new_key, value, new_lease), drop_old], [Get(new_key)]),
            deadline=deadline)
        holder = None if result.succeeded else _kv(result, 0)
        if holder is None or holder.lease == new_lease:  # a retried transaction may find its own first attempt
            return WriteOutcome(True, result.revision)
        return WriteOutcome(False, result.revision, holder=holder)

    def withdraw(self, key: str, lease_id: int, *, ours: bool, deadline: Optional[Deadline]) -> Optional[int]:
        """Remove what a registration holds: the record when ``ours`` (else another registry took
        it over) and the lease. The store revision of the delete, or None."""
        if not lease_id:
            return None
        if not ours:
            self.revoke_quietly(lease_id, deadline=deadline)
            return None
        # Delete the key only while it is still bound to our lease, then revoke the lease.
        result = self.client.txn(Txn([Compare(key, "lease", lease_id)], [Delete(key)], []), deadline=deadline)
        self.client.revoke(lease_id, deadline=deadline)
        return result.revision


def _kv(result: TxnResult, index: int) -> Optional[KeyValue]:
    value = result.results[index] if len(result.results) > index else None
    return value if isinstance(value, KeyValue) else None
