"""What a registration knows of its record between heartbeats, from a watch of its key.

A heartbeat renews the lease; whether the record is still there and still its own (not
deleted, not taken over by another lease) is what a read of the key would say. A watch of
that one key on the client's shared watch stream says it for nothing while nothing
changes: armed after a read found the record at revision R, it watches from R + 1, and
any delete, any put under another lease, a compaction, a cancelled watch or a broken
stream make it stop vouching, so the next heartbeat reads the key again (and arms it
anew). Clients without key watches (the memory backend's) read every time.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Protocol, Union, runtime_checkable

from ...errors import RegistryError
from ._ops import WatchBatch

__all__ = ["RecordGuard"]

log = logging.getLogger("fyerreg.registry.etcd")


@runtime_checkable
class _KeyWatcher(Protocol):
    def watch_key(self, key: str, start_revision: int,
                  on_batch: Callable[[Union[WatchBatch, RegistryError]], None]) -> Callable[[], None]: ...


class _Armed:
    """One watch of the key, vouching for ``lease`` until anything else is seen."""

    __slots__ = ("key", "lease", "live", "dead", "cancel")

    def __init__(self, key: str, lease: int) -> None:
        self.key = key
        self.lease = lease
        self.live = False  # etcd created the watch
        self.dead = False  # something other than the record under ``lease`` was seen, or the watch ended
        self.cancel: Callable[[], None] = _no_op

    def take(self, item: Union[WatchBatch, RegistryError]) -> None:
        if isinstance(item, RegistryError) or item.canceled or item.compact_revision:
            self.dead = True
            return
        if any(event.deleted or event.kv.lease != self.lease for event in item.events):
            self.dead = True
        elif item.created:
            self.live = True


class RecordGuard:
    """Says whether the record at a key is known, without a read, to still hold a lease."""

    def __init__(self, client: object) -> None:
        self._watcher = client if isinstance(client, _KeyWatcher) else None
        self._lock = threading.Lock()
        self._armed: Optional[_Armed] = None
        self._stopped = False

    def vouches(self, key: str, lease: int) -> bool:
        """True when the watch, since the last read that armed it, saw nothing but ``key`` under ``lease``."""
        armed = self._armed
        return (armed is not None and armed.live and not armed.dead
                and armed.key == key and armed.lease == lease)

    def arm(self, key: str, lease: int, revision: int) -> None:
        """A read at ``revision`` found ``key`` under ``lease``: watch it from ``revision + 1``."""
        if self._watcher is None:
            return
        armed = _Armed(key, lease)
        with self._lock:
            if self._stopped:
                return
            old, self._armed = self._armed, armed
        if old is not None:
            old.cancel()
        try:
            cancel = self._watcher.watch_key(key, revision + 1, armed.take)
        except RegistryError as exc:  # the next heartbeat reads, and tries again
            log.debug("cannot watch %s: %s", key, exc)
            armed.dead = True
            return
        with self._lock:
            if self._armed is armed and not self._stopped:
                armed.cancel = cancel
                return
        cancel()  # disarmed meanwhile

    def disarm(self) -> None:
        """Stop watching for good (the registration is over or taken over)."""
        with self._lock:
            self._stopped = True
            armed, self._armed = self._armed, None
        if armed is not None:
            armed.dead = True
            armed.cancel()


def _no_op() -> None:
    pass
