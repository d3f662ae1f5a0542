"""A lease granted ahead of time, so that a registration is one write instead of two in a row.

Registering needs a lease and then the record bound to it: two raft writes, one after the
other, before a subscriber can see the instance. A registry that has registered once keeps
one spare lease, granted in the background by its ``fyerreg-spare-lease`` thread after
each use; the next registration takes it and writes its record at once. A spare is only
taken while young (granted less than a third of its ttl ago, so the new registration's
first heartbeat comes well before it would expire); an old one is left to expire and a
lease is granted on the spot, as without a spare. The thread sleeps on an event while
nothing is registered; close() stops it and revokes the unused spare.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional, Tuple

from ..._threads import join_thread, start_thread
from ...errors import RegistryError
from ._ops import Deadline
from ._surface import KVClient

__all__ = ["SpareLease"]

log = logging.getLogger("fyerreg.registry.etcd")


class SpareLease:
    """Leases of ``ttl`` seconds for new registrations, one granted ahead of time."""

    def __init__(self, client: KVClient, ttl: float, *, grant_timeout: float) -> None:
        self._client = client
        self._ttl = ttl
        self._grant_timeout = grant_timeout
        self._lock = threading.Lock()
        self._spare: Optional[Tuple[int, float]] = None  # lease id, monotonic time granted
        self._wanted = threading.Event()
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def take(self, *, deadline: Optional[Deadline]) -> int:
        """A lease for a new registration: the spare while young, else one granted now."""
        with self._lock:
            spare, self._spare = self._spare, None
            if not self._stopped:
                if self._thread is None:
                    self._thread = start_thread("spare-lease", self._run)
                self._wanted.set()
        if spare is not None and self._young(spare):
            return spare[0]
        return self._client.grant(self._ttl, deadline=deadline)

    def _young(self, spare: Tuple[int, float]) -> bool:
        return time.monotonic() - spare[1] < self._ttl / 3.0

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            with self._lock:
                self._wanted.clear()
                if self._stopped:
                    return
                if self._spare is not None and self._young(self._spare):
                    continue  # asked again before the last one was taken: it still serves
            granted_at = time.monotonic()
            try:
                lease_id = self._client.grant(self._ttl, deadline=Deadline(self._grant_timeout))
            except RegistryError as exc:
                log.debug("granting a spare lease failed (the next registration grants its own): %s", exc)
                continue
            with self._lock:
                if self._stopped:
                    unused: Optional[int] = lease_id
                else:
                    unused = self._spare[0] if self._spare is not None else None
                    self._spare = (lease_id, granted_at)
            if unused is not None:
                # A spare nobody will take (too old, or the registry is closing): it expires by
                # itself, but need not live that long.
                self._revoke(unused, Deadline(self._grant_timeout))

    def stop(self, *, revoke: bool = True, deadline: Optional[Deadline]) -> None:
        """Stop granting and (with ``revoke``) revoke the unused spare within ``deadline``."""
        with self._lock:
            self._stopped = True
            spare, self._spare = self._spare, None
        self._wanted.set()
        if spare is not None and revoke and not (deadline is not None and deadline.passed()):
            self._revoke(spare[0], deadline)

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end (after :meth:`stop`); True when it has."""
        thread = self._thread
        return thread is None or join_thread(thread, timeout)

    def _revoke(self, lease_id: int, deadline: Optional[Deadline]) -> None:
        try:
            self._client.revoke(lease_id, deadline=deadline)
        except RegistryError as exc:
            log.debug("could not revoke spare lease %x (it expires by itself): %s", lease_id, exc)
