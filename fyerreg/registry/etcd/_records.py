"""Writing and removing instance records bound to leases, without clobbering another owner's key.

Every write is an etcd transaction guarded on the key's lease: a key that another
registry took over (same id, its own lease) is never overwritten nor deleted by us.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ...errors import AlreadyRegisteredError, RegistryError
from ...naming import Instance
from ..base import RegistrationState
from ._client import EtcdClient
from ._keys import KeyLayout
from ._ops import Compare, Deadline, Delete, Get, KeyValue, Put, Timeout, Txn, TxnResult

__all__ = ["Registration", "RecordWriter", "Turn", "cleanup_time", "instance_extra"]

log = logging.getLogger("fyerreg.registry.etcd")


def instance_extra(instance: Instance, lease_id: Optional[int] = None, **more: Any) -> Dict[str, Any]:
    """The structured log fields of an instance.

    Lease ids are written in hex, as in the messages and as etcdctl prints them, so one
    search finds a lease in both.
    """
    extra: Dict[str, Any] = {"service": instance.service, "version": instance.version, "instance_id": instance.id}
    if lease_id is not None:
        extra["lease_id"] = lease_hex(lease_id)
    for name, value in more.items():
        extra[name] = lease_hex(value) if name.endswith("lease_id") and isinstance(value, int) else value
    return extra


def lease_hex(lease_id: int) -> str:
    """A lease id as etcd's tools print it."""
    return f"{lease_id:x}"


class Turn(enum.Enum):
    """What :meth:`Registration.begin_write` got."""

    TAKEN = "taken"
    FINISHED = "finished"  # deregistered or closed: nothing may be written for it any more
    TIMED_OUT = "timed out"  # another write still waits on etcd


class Registration:
    """What this registry knows about one instance it registered.

    Its fields change under ``lock``, which is never held across a call to etcd. Writes
    to etcd for it (register, update, repair, deregister) take turns (:meth:`begin_write`
    / :meth:`end_write`); ``close()`` never waits for a turn: it marks the registration
    ``finished`` and the write in flight, when it ends, removes what it holds.

    ``active``: the record is ours and kept alive; False once another registry took
    the key over (``taken_over_by`` its lease) or after deregistration (``finished``).
    """

    def __init__(self, instance: Instance, key: str) -> None:
        self.instance = instance
        self.key = key
        self.lock = threading.RLock()
        self._turn_free = threading.Condition(self.lock)
        self._writing = False
        self.lease_id = 0
        self.active = False
        self.finished = False
        self.taken_over_by: Optional[int] = None
        self.last_refresh: Optional[float] = None
        self.reregistrations = 0
        self.last_error: Optional[str] = None
        self.keepalive: Any = None
        self.retired: List[Any] = []

    def keepers(self) -> List[Any]:
        """Every keepalive this registration started (the current one last)."""
        with self.lock:
            return [*self.retired, *([self.keepalive] if self.keepalive is not None else [])]

    def begin_write(self, deadline: Deadline) -> Turn:
        """Wait for this registration's turn to write to etcd (never taken once it is finished)."""
        with self.lock:
            if not self._turn_free.wait_for(lambda: not self._writing, deadline.left()):
                return Turn.TIMED_OUT
            if self.finished:
                return Turn.FINISHED
            self._writing = True
            return Turn.TAKEN

    def end_write(self) -> bool:
        """End the turn; True when the registration was finished meanwhile: the writer then
        removes what it holds (close() and a timed-out deregister() leave that to it)."""
        with self.lock:
            self._writing = False
            self._turn_free.notify_all()
            return self.finished

    def finish(self) -> bool:
        """Mark it finished (no write starts after this); True when a write is in flight, which then
        removes what it holds when it ends."""
        with self.lock:
            self.finished = True
            return self._writing

    def wait_idle(self, timeout: Optional[float]) -> bool:
        """Wait until no write is in flight; False when ``timeout`` passed first."""
        with self.lock:
            return self._turn_free.wait_for(lambda: not self._writing, timeout)

    def state(self) -> RegistrationState:
        """A consistent copy for ``registration_state``."""
        with self.lock:
            return RegistrationState(
                registered=self.active and not self.finished,
                lease_id=self.lease_id or None,
                last_refresh=self.last_refresh,
                reregistrations=self.reregistrations,
                last_error=self.last_error,
            )


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


def cleanup_time(deadline: Timeout) -> float:
    """Seconds for cleaning up after a call bounded by ``deadline``: what is left of it, kept
    within [CLEANUP_FLOOR, CLEANUP_TIMEOUT], so a call with a timeout still keeps to it."""
    left = deadline.left() if isinstance(deadline, Deadline) else deadline
    return CLEANUP_TIMEOUT if left is None else min(CLEANUP_TIMEOUT, max(CLEANUP_FLOOR, left))


def _now_ms() -> int:
    return int(time.time() * 1000)


class RecordWriter:
    """Lease and record operations of the keepalive threads and the registry."""

    def __init__(self, client: EtcdClient, layout: KeyLayout, ttl: int) -> None:
        self.client = client
        self.layout = layout
        self.ttl = ttl

    def stamp(self, instance: Instance) -> Tuple[Instance, bytes]:
        """The instance as written now (``updated_at`` set) and its wire bytes."""
        stamped = instance.replace(updated_at=_now_ms())
        return stamped, stamped.to_json().encode("utf-8")

    def revoke_quietly(self, lease_id: int, deadline: Timeout) -> None:
        """Revoke a lease, logging (not raising) failures: an unrevoked lease expires anyway."""
        if not lease_id:
            return
        try:
            self.client.revoke(lease_id, deadline=deadline)
        except RegistryError as exc:
            log.info("could not revoke lease %x (it expires by itself): %s", lease_id, exc,
                     extra={"lease_id": lease_id})

    def create(self, instance: Instance, *, exclusive: bool,
               deadline: Timeout) -> Tuple[int, Instance, WriteOutcome]:
        """Grant a lease and write the record bound to it.

        ``exclusive``: only when the key is absent, else AlreadyRegisteredError with
        nothing written. Otherwise another holder is taken over (the outcome's
        ``previous`` names it).
        """
        key = self.layout.instance_key(instance)
        deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        lease_id = self.client.grant(self.ttl, deadline=deadline)
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
            self.revoke_quietly(lease_id, deadline=cleanup_time(deadline))
            raise
        return lease_id, stamped, outcome

    def guarded_put(self, key: str, value: bytes, *, owner_lease: int, put_lease: int,
                    deadline: Timeout) -> WriteOutcome:
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

    def remove(self, key: str, lease_id: int, *, deadline: Timeout) -> Tuple[bool, int]:
        """Delete the key if it is still bound to ``lease_id``, then revoke the lease.

        Returns whether the key was deleted and the store revision.
        """
        deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        result = self.client.txn(Txn([Compare(key, "lease", lease_id)], [Delete(key)], []), deadline=deadline)
        self.client.revoke(lease_id, deadline=deadline)
        return result.succeeded, result.revision

    def withdraw(self, reg: Registration, *, deadline: Timeout) -> Optional[int]:
        """Remove what ``reg`` holds in etcd: its record while still ours, and its lease.

        Marks it inactive first. Returns the store revision of the delete (None when
        there was no record of ours to delete).
        """
        with reg.lock:
            was_active, reg.active = reg.active, False
            lease_id = reg.lease_id
        if not lease_id:
            return None
        if not was_active:  # taken over: the record is another's, the lease still ours
            self.revoke_quietly(lease_id, deadline=deadline)
            return None
        return self.remove(reg.key, lease_id, deadline=deadline)[1]

    def withdraw_quietly(self, reg: Registration, *, deadline: Timeout) -> None:
        """:meth:`withdraw` within :func:`cleanup_time`, logging (not raising) failures: the lease expires anyway."""
        try:
            self.withdraw(reg, deadline=cleanup_time(deadline))
        except RegistryError as exc:
            log.info("could not remove %s (its lease expires by itself): %s", reg.key, exc,
                     extra=instance_extra(reg.instance, reg.lease_id))


def _kv(result: TxnResult, index: int) -> Optional[KeyValue]:
    value = result.results[index] if len(result.results) > index else None
    return value if isinstance(value, KeyValue) else None
