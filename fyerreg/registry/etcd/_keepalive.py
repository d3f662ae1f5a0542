"""One thread per registered instance: refresh its lease, repair a lost lease or record.

The thread (``fyerreg-keepalive-<service>-<id>``) refreshes the lease about every
``ttl/3`` and checks that the key still holds our record. A lease etcd no longer
knows (expired during a partition, revoked, data wiped or restored) is replaced:
a new lease is granted and the record written again, unless another registry has
taken the key over meanwhile. Transient failures are retried with backoff until
``stop()``; nothing ends the thread but ``stop()`` or a takeover.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from ..._threads import join_thread, start_thread
from ...errors import NotRegisteredError, RegistryError
from ...metrics import Metrics
from ...naming import Instance
from ...retry import Retry
from ._errors import LeaseNotFoundError
from ._ops import Deadline, KeyValue, Timeout
from ._records import RecordWriter, Registration, Turn, cleanup_time, instance_extra

__all__ = ["LeaseKeeper"]

log = logging.getLogger("fyerreg.registry.etcd")

_ONE_TRY = Retry(max_tries=1)


class LeaseKeeper:
    """Keeps one :class:`Registration` alive and repairs it; all writes go through here."""

    def __init__(self, reg: Registration, writer: RecordWriter, metrics: Metrics, *,
                 interval: float, retry: Retry, call_timeout: float) -> None:
        self.reg = reg
        self.writer = writer
        self.metrics = metrics
        self.interval = interval
        self.retry = retry
        self.call_timeout = call_timeout
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._failures = 0
        self._lost_lease = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the keepalive thread."""
        inst = self.reg.instance
        self._thread = start_thread(f"keepalive-{inst.service}-{inst.id}", self._run)

    def signal_stop(self) -> None:
        """Ask the thread to end (it does at its next wake-up, writing nothing more); never blocks."""
        self._stop.set()

    def stop(self, timeout: float) -> bool:
        """End the thread and wait for it; True when it has ended."""
        self._stop.set()
        return self._thread is None or join_thread(self._thread, timeout)

    @property
    def stopped(self) -> bool:
        """True once stopping was asked for."""
        return self._stop.is_set()

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.tick()
            except RegistryError as exc:
                if self._stop.is_set():
                    break  # told to stop (close() may have ended its call): nothing to report
                self._note_failure(exc)
            except Exception as exc:  # a bug must not end the heartbeat silently
                log.exception("keepalive of %s failed unexpectedly; continuing", self.reg.key,
                              extra=instance_extra(self.reg.instance, self.reg.lease_id))
                self._note_failure(exc)
            wait = min(self.interval, self.retry.wait_time(self._failures)) if self._failures else self.interval

    def _note_failure(self, exc: BaseException) -> None:
        reg = self.reg
        with reg.lock:
            self._failures += 1
            failures = self._failures
            reg.last_error = str(exc) or type(exc).__name__
        if failures == 1:
            log.warning("heartbeat of %s failed, retrying until it works: %s", reg.key, exc,
                        extra=instance_extra(reg.instance, reg.lease_id, attempt=failures))
        else:
            log.debug("heartbeat of %s failed again: %s", reg.key, exc,
                      extra=instance_extra(reg.instance, reg.lease_id, attempt=failures))

    def _note_success(self) -> None:
        reg = self.reg
        with reg.lock:
            reg.last_refresh = time.time()
            reg.last_error = None
            failures, self._failures = self._failures, 0
        if failures:
            log.info("heartbeat of %s works again after %d failures", reg.key, failures,
                     extra=instance_extra(reg.instance, reg.lease_id, attempt=failures))

    # -- one heartbeat ----------------------------------------------------------------------

    def tick(self) -> None:
        """Refresh the lease; repair a lost lease or a missing record."""
        reg = self.reg
        with reg.lock:
            lease_id = reg.lease_id
        # One budget for the whole heartbeat, so stop() never waits longer than that.
        deadline = Deadline(self.call_timeout)
        ttl = self.writer.client.refresh(lease_id, deadline=deadline, retry=_ONE_TRY)
        current: Optional[KeyValue] = None
        if ttl > 0:
            _, current = self.writer.client.get(reg.key, deadline=deadline, retry=_ONE_TRY)
            if current is not None and current.lease == lease_id:
                if self._current(lease_id):
                    self._note_success()
                return
        # Something to repair: a write of its own, in turn with register, update and deregister.
        if reg.begin_write(deadline) is not Turn.TAKEN:
            return  # finished, or another write in flight: it repairs what it finds, or the next heartbeat does
        try:
            if not self._current(lease_id):
                return  # deregistered, taken over or repaired by update_service meanwhile
            if ttl <= 0:
                self._recover(reg.instance, deadline=deadline, reason=f"lease {lease_id:x} was lost")
            elif current is None:
                self._repair_record(deadline=deadline)
            else:
                self._taken_over(current, deadline=deadline)
        finally:
            if reg.end_write():  # close() or deregister() overtook this repair
                self.writer.withdraw_quietly(reg, deadline=deadline)

    def _current(self, lease_id: int) -> bool:
        reg = self.reg
        with reg.lock:
            return not (self._stop.is_set() or reg.finished or not reg.active or reg.lease_id != lease_id)

    def write(self, instance: Instance, *, deadline: Timeout) -> int:
        """Heartbeat and write ``instance`` (its update) under the registration's lease.

        Repairs a lost lease on the way; NotRegisteredError when another registry
        took the key over. Call in the registration's write turn. Returns the store revision.
        """
        reg = self.reg
        with reg.lock:
            lease_id = reg.lease_id
        lost = f"lease {lease_id:x} was lost"
        deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        # Write first, so watchers see the update one round trip after the call; a lost
        # lease fails the write (LeaseNotFoundError), and the heartbeat follows it.
        revision: Optional[int] = None
        stamped, value = self.writer.stamp(instance)
        try:
            outcome = self.writer.guarded_put(reg.key, value, owner_lease=lease_id,
                                              put_lease=lease_id, deadline=deadline)
        except LeaseNotFoundError:
            revision = self._recover(instance, deadline=deadline, reason=lost)
        else:
            if not outcome.written:
                self._taken_over(outcome.holder, deadline=deadline)
            else:
                with reg.lock:
                    reg.instance = stamped  # what the record holds now, whatever the heartbeat says
                if self.writer.client.refresh(lease_id, deadline=deadline) > 0:
                    self._note_success()
                    return outcome.revision
                # Expired between the write and the heartbeat, taking the record with it.
                revision = self._recover(instance, deadline=deadline, reason=lost)
        if revision is None:
            raise NotRegisteredError(
                f"{reg.key} was taken over by another registry (lease {reg.taken_over_by or 0:x})")
        return revision

    def _repair_record(self, *, deadline: Timeout) -> None:
        reg = self.reg
        with reg.lock:
            lease_id, instance = reg.lease_id, reg.instance
        stamped, value = self.writer.stamp(instance)
        try:
            outcome = self.writer.guarded_put(reg.key, value, owner_lease=lease_id, put_lease=lease_id,
                                              deadline=deadline)
        except LeaseNotFoundError:
            self._recover(instance, deadline=deadline, reason=f"lease {lease_id:x} was lost")
            return
        if not outcome.written:
            self._taken_over(outcome.holder, deadline=deadline)
            return
        with reg.lock:
            reg.instance = stamped
            reg.reregistrations += 1
        self.metrics.inc("reregistrations")
        self._note_success()
        log.warning("record of %s was deleted while its lease lived; written again", reg.key,
                    extra=instance_extra(stamped, lease_id))

    def _recover(self, instance: Instance, *, deadline: Timeout, reason: str) -> Optional[int]:
        """Grant a new lease and write ``instance`` again (the lease was lost).

        Returns the store revision, or None when another registry holds the key now.
        """
        reg = self.reg
        with reg.lock:
            old = reg.lease_id
        if self._lost_lease != old:  # count and report a loss once, however long the repair takes
            self._lost_lease = old
            self.metrics.inc("lease_losses")
            log.warning("%s: %s; registering it again", reg.key, reason, extra=instance_extra(instance, old))
        new = self.writer.client.grant(self.writer.ttl, deadline=deadline)
        try:
            stamped, value = self.writer.stamp(instance)
            outcome = self.writer.guarded_put(reg.key, value, owner_lease=old, put_lease=new, deadline=deadline)
        except BaseException:
            self.writer.revoke_quietly(new, deadline=cleanup_time(deadline))
            raise
        if not outcome.written:
            self.writer.revoke_quietly(new, deadline=cleanup_time(deadline))
            self._taken_over(outcome.holder, deadline=deadline)
            return None
        with reg.lock:
            reg.lease_id = new
            reg.instance = stamped
            reg.reregistrations += 1
        self.metrics.inc("reregistrations")
        self._note_success()
        log.info("%s registered again with lease %x after losing lease %x", reg.key, new, old,
                 extra=instance_extra(instance, new, previous_lease_id=old))
        return outcome.revision

    def _taken_over(self, holder: Optional[KeyValue], *, deadline: Timeout) -> None:
        reg = self.reg
        with reg.lock:
            if not reg.active:
                return
            reg.active = False
            reg.taken_over_by = holder.lease if holder is not None else None
            reg.last_error = f"taken over by lease {reg.taken_over_by or 0:x}"
            lease_id = reg.lease_id
        self._stop.set()
        self.writer.revoke_quietly(lease_id, deadline=cleanup_time(deadline))
        log.warning("%s was taken over by another registry (its lease %x, ours %x); no longer keeping it alive",
                    reg.key, reg.taken_over_by or 0, lease_id,
                    extra=instance_extra(reg.instance, lease_id, holder_lease_id=reg.taken_over_by))
