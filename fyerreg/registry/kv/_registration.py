"""The whole life of one registered instance: create, update, keep alive, repair, remove, abandon.

A :class:`Registration` owns its lease and record, its lock, its write turns and its
keepalive thread (on etcd ``fyerreg-keepalive-<service>-<id>``), which refreshes the lease
about every ``ttl/3``, checks that the key still holds our record, and writes it again
under a new lease when the store lost the lease (unless another registry took the key
over). The store is etcd or the memory backend's in-process one, behind the same client
surface (``_surface.KVClient``). The lock is never held across a call to the store;
writes take turns, and ``abandon()`` (close) never
waits for one: the write in flight, when it ends, removes what it holds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ...errors import NotRegisteredError, RegistryError
from ...metrics import Metrics
from ...naming import Instance
from ...retry import Retry
from ..base import RegistrationState
from ._guard import RecordGuard
from ._keepalives import KeepaliveThreads, heartbeat_wait
from ._ops import Deadline, KeyValue
from ._records import RecordWriter, cleanup_deadline, instance_extra
from ._surface import LeaseNotFoundError
from ._turns import Finish, Turn, busy_error, overtaken_error, remove_busy_error

__all__ = ["Registration"]

log = logging.getLogger("fyerreg.registry.etcd")

_ONE_TRY = Retry(max_tries=1)


class Registration:
    """One instance this registry registered, from its first write to its removal.

    Its keepalive thread (named ``thread_name``) heartbeats every ``interval`` seconds
    while ``heartbeat_gate()`` is true; ``interval`` None: no keepalive thread (leases
    that never expire).

    ``active``: the record is ours and kept alive; False once another registry took the key
    over (``taken_over_by`` its lease) or once it is finished."""

    def __init__(self, instance: Instance, writer: RecordWriter, metrics: Metrics, *,
                 interval: Optional[float], retry: Retry, call_timeout: float, thread_name: str,
                 heartbeat_gate: Callable[[], bool] = lambda: True) -> None:
        self.instance = instance
        self._writer = writer
        self._metrics = metrics
        self._interval = interval
        self._retry = retry
        self._call_timeout = call_timeout
        self._gate = heartbeat_gate
        self._lock = threading.RLock()
        self._turn_free = threading.Condition(self._lock)
        self._writing = False
        self._finished: Optional[Finish] = None
        self.lease_id = 0
        self.active = False
        self.taken_over_by: Optional[int] = None
        self._last_refresh: Optional[float] = None
        self._reregistrations = 0
        self._last_error: Optional[str] = None
        self._failures = 0
        self._lost_lease = 0
        self._keepalives = KeepaliveThreads(thread_name)
        self._guard = RecordGuard(writer.client)

    @property
    def key(self) -> str:
        """The key of its record (where the layout's keys name the lease: the current lease's)."""
        return self._writer.key_of(self.instance, self.lease_id)

    # -- what the registry calls ------------------------------------------------------------

    def register(self, instance: Instance, *, exclusive: bool, deadline: Deadline) -> Optional[int]:
        """Write ``instance``: a new lease and record, or an update of the live one.

        Returns the store revision; None when the registration was finished before its
        turn came (register again on a new one). A first registration that fails
        leaves nothing behind and is finished.
        """

        def write() -> int:
            with self._lock:
                active = self.active
            if active:
                return self._write(instance, deadline=deadline)
            return self._create(instance, exclusive=exclusive, deadline=deadline)

        return self._in_turn("register", deadline, write)

    def update(self, instance: Instance, *, deadline: Deadline) -> int:
        """Write ``instance`` (the same key) under the live lease; the store revision."""

        def write() -> int:
            with self._lock:
                active, holder = self.active, self.taken_over_by
            if not active:
                raise NotRegisteredError(f"{self.key} was taken over by another registry (lease {holder or 0:x})")
            return self._write(instance, deadline=deadline)

        revision = self._in_turn("update_service", deadline, write)
        if revision is None:
            raise NotRegisteredError(f"{self.key} was deregistered")
        return revision

    def remove(self, *, deadline: Deadline) -> Optional[int]:
        """Deregister: stop the keepalive and delete the record (while ours) and the lease.

        Returns the store revision of the delete (None when there was nothing of ours to delete,
        or another remove() or abandon() does it). When a write in flight outlasts ``deadline``,
        it removes what it holds when it ends and RegistryUnavailableError says so. The threads
        are joined by :meth:`join`."""
        self._signal_stop()  # a heartbeat in flight writes nothing once told
        turn = self._begin_write(deadline)
        if turn is Turn.FINISHED:
            return None
        if turn is Turn.TIMED_OUT:
            self._finish(Finish.REMOVED)
            raise remove_busy_error(self.key, deadline, self._writer.ttl)
        try:
            self._finish(Finish.REMOVED)
            self._signal_stop()  # one started by a register() just before our turn
            return self.withdraw(deadline=deadline)
        finally:
            with self._lock:
                self._writing = False
                self._turn_free.notify_all()

    def abandon(self) -> bool:
        """Finish it for close(): no write starts after this and the keepalive is told to stop.

        True when a write is in flight, which then removes what it holds when it ends;
        otherwise :meth:`withdraw` is the caller's to run."""
        in_flight = self._finish(Finish.CLOSED)
        self._signal_stop()
        return in_flight

    def withdraw(self, *, deadline: Optional[Deadline]) -> Optional[int]:
        """Remove what it holds in etcd: its record while still ours, and its lease; marks it inactive
        first. Returns the store revision of the delete (None when there was no record of ours)."""
        revision = self._withdraw(deadline=deadline)
        self._metrics.inc("deregistrations")
        log.info("deregistered %s (lease %x revoked)", self.key, self.lease_id,
                 extra=instance_extra(self.instance, self.lease_id))
        return revision

    def verify(self, *, deadline: Optional[Deadline]) -> None:
        """Read the key now; when another registry holds it, stop keeping it (as the next heartbeat would)."""
        with self._lock:
            lease_id, active = self.lease_id, self.active and self._finished is None
        if not active:
            return
        _, current = self._writer.client.get(self._writer.key_of(self.instance, lease_id), deadline=deadline)
        if current is not None and current.lease != lease_id:
            self._taken_over(current, deadline=deadline)

    def wait_idle(self, timeout: Optional[float]) -> bool:
        """Wait until no write is in flight; False when ``timeout`` passed first."""
        with self._lock:
            return self._turn_free.wait_for(lambda: not self._writing, timeout)

    def join(self, timeout: float) -> bool:
        """Wait for every keepalive thread it started to end (stopping them first); True when all have."""
        return self._keepalives.join(timeout)

    @property
    def finished(self) -> bool:
        """True once removed, abandoned or failed on its first write: nothing is written for it any more."""
        with self._lock:
            return self._finished is not None

    def state(self) -> RegistrationState:
        """A consistent copy for ``registration_state``."""
        with self._lock:
            return RegistrationState(
                registered=self.active and self._finished is None,
                lease_id=self.lease_id or None,
                last_refresh=self._last_refresh,
                reregistrations=self._reregistrations,
                last_error=self._last_error,
            )

    # -- write turns ------------------------------------------------------------------------

    def _in_turn(self, call: str, deadline: Deadline, write: Callable[[], int]) -> Optional[int]:
        """``write()`` in a write turn (None: finished before the turn came). Raises when the turn
        does not come by ``deadline``, or when remove() or abandon() overtook the write."""
        turn = self._begin_write(deadline)
        if turn is Turn.FINISHED:
            return None
        if turn is Turn.TIMED_OUT:
            raise busy_error(self.key, call, deadline)
        try:
            revision = write()
        finally:
            finished = self._end_write(deadline)
        if finished is not None:
            raise overtaken_error(self.key, call, finished)
        return revision

    def _begin_write(self, deadline: Deadline) -> Turn:
        with self._lock:
            if not self._turn_free.wait_for(lambda: not self._writing, deadline.left()):
                return Turn.TIMED_OUT
            if self._finished is not None:
                return Turn.FINISHED
            self._writing = True
            return Turn.TAKEN

    def _end_write(self, deadline: Deadline) -> Optional[Finish]:
        """End the turn. When remove() or abandon() finished the registration meanwhile, remove
        what it holds now (their job, left to the write in flight) and say how it was finished."""
        with self._lock:
            self._writing = False
            self._turn_free.notify_all()
            finished = self._finished
        if finished is not None:
            self._withdraw_quietly(deadline)
        return finished

    def _finish(self, how: Finish) -> bool:
        with self._lock:
            if self._finished is None:
                self._finished = how
            return self._writing

    # -- writes (in a turn) -----------------------------------------------------------------

    def _create(self, instance: Instance, *, exclusive: bool, deadline: Deadline) -> int:
        with self._lock:
            first = not self.lease_id
        try:
            lease_id, stamped, outcome = self._writer.create(instance, exclusive=exclusive, deadline=deadline)
        except BaseException:
            if first:  # a first registration that failed leaves nothing behind
                self._finish(Finish.REMOVED)
            raise
        with self._lock:
            self.instance, self.lease_id, self.active = stamped, lease_id, True
            self.taken_over_by, self._last_error, self._last_refresh = None, None, time.time()
            self._failures = 0
            if self._finished is None and self._interval is not None:  # else _end_write withdraws it
                # Under the lock: whoever finishes it sees this thread to stop and join.
                self._keepalives.start(self._run)
        if outcome.previous is not None:
            log.warning("Took over %s, held by lease %x, with lease %x (a restarted process took over its own "
                        "record, or two processes share one id)", self.key, outcome.previous.lease, lease_id,
                        extra=instance_extra(instance, lease_id, previous_lease_id=outcome.previous.lease))
            self._metrics.inc("takeovers")
        self._metrics.inc("registrations")
        log.info("registered %s at %s with lease %x", self.key, instance.address, lease_id,
                 extra=instance_extra(instance, lease_id))
        return outcome.revision

    def _write(self, instance: Instance, *, deadline: Deadline) -> int:
        """Write ``instance`` (its update) under the lease and heartbeat; repairs a lost lease on
        the way. NotRegisteredError when another registry took the key over."""
        with self._lock:
            lease_id = self.lease_id
        lost = f"lease {lease_id:x} was lost"
        # Write first, so watchers see the update one round trip after the call; a lost
        # lease fails the write (LeaseNotFoundError), and the heartbeat follows it.
        revision: Optional[int] = None
        try:
            stamped, outcome = self._writer.rewrite(self._writer.key_of(instance, lease_id), instance, lease_id,
                                                    deadline=deadline)
        except LeaseNotFoundError:
            revision = self._recover(instance, deadline=deadline, reason=lost)
        else:
            if not outcome.written:
                self._taken_over(outcome.holder, deadline=deadline)
            else:
                with self._lock:
                    self.instance = stamped  # what the record holds now, whatever the heartbeat says
                if self._writer.client.refresh(lease_id, deadline=deadline) > 0:
                    self._note_success()
                    return outcome.revision
                # Expired between the write and the heartbeat, taking the record with it.
                revision = self._recover(instance, deadline=deadline, reason=lost)
        if revision is None:
            raise NotRegisteredError(
                f"{self.key} was taken over by another registry (lease {self.taken_over_by or 0:x})")
        return revision

    def _withdraw(self, *, deadline: Optional[Deadline]) -> Optional[int]:
        with self._lock:
            ours, self.active, lease_id = self.active, False, self.lease_id
        return self._writer.withdraw(self._writer.key_of(self.instance, lease_id), lease_id, ours=ours,
                                     deadline=deadline)

    def _withdraw_quietly(self, deadline: Optional[Deadline]) -> None:
        """:meth:`_withdraw` by :func:`cleanup_deadline`, logging (not raising) failures: the lease expires anyway."""
        try:
            self._withdraw(deadline=cleanup_deadline(deadline))
        except RegistryError as exc:
            log.info("could not remove %s (its lease expires by itself): %s", self.key, exc,
                     extra=instance_extra(self.instance, self.lease_id))

    # -- the keepalive thread ---------------------------------------------------------------

    def _signal_stop(self) -> None:
        self._keepalives.signal_stop()
        self._guard.disarm()

    def _run(self, stop: threading.Event) -> None:
        assert self._interval is not None
        wait = heartbeat_wait(self._interval)
        while not stop.wait(wait):
            if not self._gate():
                continue
            try:
                self._heartbeat(stop)
            except RegistryError as exc:
                if stop.is_set():
                    break  # told to stop (close() may have ended its call): nothing to report
                self._note_failure(exc)
            except Exception as exc:  # a bug must not end the heartbeat silently
                log.exception("keepalive of %s failed unexpectedly; continuing", self.key,
                              extra=instance_extra(self.instance, self.lease_id))
                self._note_failure(exc)
            with self._lock:
                failures = self._failures
            wait = min(self._interval, self._retry.wait_time(failures)) if failures else heartbeat_wait(self._interval)

    def _heartbeat(self, stop: threading.Event) -> None:
        """Refresh the lease; repair a lost lease or a missing record."""
        with self._lock:
            lease_id = self.lease_id
        # One budget for the whole heartbeat, so stopping never waits longer than that.
        deadline = Deadline(self._call_timeout)
        ttl = self._writer.client.refresh(lease_id, deadline=deadline, retry=_ONE_TRY)
        current: Optional[KeyValue] = None
        if ttl > 0:
            key = self._writer.key_of(self.instance, lease_id)
            vouched = self._guard.vouches(key, lease_id)  # else read the record, and watch it from there
            if not vouched:
                revision, current = self._writer.client.get(key, deadline=deadline, retry=_ONE_TRY)
                if current is not None and current.lease == lease_id:
                    vouched = True
                    self._guard.arm(key, lease_id, revision)
            if vouched:
                if self._current(lease_id, stop):
                    self._note_success()
                return
        # Something to repair: a write of its own, in turn with register, update and remove.
        if self._begin_write(deadline) is not Turn.TAKEN:
            return  # finished, or another write in flight: it repairs what it finds, or the next heartbeat does
        try:
            if not self._current(lease_id, stop):
                return  # removed, taken over or repaired by update meanwhile
            if ttl <= 0:
                self._recover(self.instance, deadline=deadline, reason=f"lease {lease_id:x} was lost")
            elif current is None:
                self._repair_record(deadline=deadline)
            else:
                self._taken_over(current, deadline=deadline)
        finally:
            self._end_write(deadline)  # overtaken by remove() or abandon(): what it wrote is withdrawn

    def _current(self, lease_id: int, stop: threading.Event) -> bool:
        with self._lock:
            return not (stop.is_set() or self._finished is not None or not self.active or self.lease_id != lease_id)

    def _note_failure(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            failures = self._failures
            self._last_error = str(exc) or type(exc).__name__
        log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                "heartbeat of %s failed, retrying until it works: %s" if failures == 1
                else "heartbeat of %s failed again: %s", self.key, exc,
                extra=instance_extra(self.instance, self.lease_id, attempt=failures))

    def _note_success(self) -> None:
        with self._lock:
            self._last_refresh = time.time()
            self._last_error = None
            failures, self._failures = self._failures, 0
        if failures:
            log.info("heartbeat of %s works again after %d failures", self.key, failures,
                     extra=instance_extra(self.instance, self.lease_id, attempt=failures))

    # -- repairs (in a turn) ----------------------------------------------------------------

    def _repair_record(self, *, deadline: Optional[Deadline]) -> None:
        with self._lock:
            lease_id, instance = self.lease_id, self.instance
        try:
            stamped, outcome = self._writer.rewrite(self._writer.key_of(instance, lease_id), instance, lease_id,
                                                    deadline=deadline)
        except LeaseNotFoundError:
            self._recover(instance, deadline=deadline, reason=f"lease {lease_id:x} was lost")
            return
        if not outcome.written:
            self._taken_over(outcome.holder, deadline=deadline)
            return
        with self._lock:
            self.instance = stamped
            self._reregistrations += 1
        self._metrics.inc("reregistrations")
        self._note_success()
        log.warning("record of %s was deleted while its lease lived; written again", self.key,
                    extra=instance_extra(stamped, lease_id))

    def _recover(self, instance: Instance, *, deadline: Optional[Deadline], reason: str) -> Optional[int]:
        """Grant a new lease and write ``instance`` again (the lease was lost).

        Returns the store revision, or None when another registry holds the key now.
        """
        with self._lock:
            old = self.lease_id
            first_report, self._lost_lease = self._lost_lease != old, old
        if first_report:  # count and report a loss once, however long the repair takes
            self._metrics.inc("lease_losses")
            log.warning("%s: %s; registering it again", self.key, reason, extra=instance_extra(instance, old))
        new, stamped, outcome = self._writer.replace_lease(self._writer.key_of(instance, old), instance, old,
                                                           deadline=deadline)
        if not outcome.written:
            self._taken_over(outcome.holder, deadline=deadline)
            return None
        with self._lock:
            self.lease_id = new
            self.instance = stamped
            self._reregistrations += 1
        self._metrics.inc("reregistrations")
        self._note_success()
        log.warning("%s re-registered with lease %x after losing lease %x", self.key, new, old,
                 extra=instance_extra(instance, new, previous_lease_id=old))
        return outcome.revision

    def _taken_over(self, holder: Optional[KeyValue], *, deadline: Optional[Deadline]) -> None:
        with self._lock:
            if not self.active:
                return
            self.active = False
            self.taken_over_by = holder.lease if holder is not None else None
            self._last_error = "taken over by another registry"
            lease_id = self.lease_id
        self._signal_stop()
        self._writer.revoke_quietly(lease_id, deadline=cleanup_deadline(deadline))
        log.warning("%s was taken over by another registry (its lease %x, ours %x); no longer keeping it alive",
                    self.key, self.taken_over_by or 0, lease_id,
                    extra=instance_extra(self.instance, lease_id, holder_lease_id=self.taken_over_by))
