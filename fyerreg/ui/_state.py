"""What the dashboard shows: every service's instances and recent changes, fed by subscriptions.

One :class:`Board` holds the state. The threads following the subscriptions hand it
each snapshot (:meth:`Board.apply`); it works out who joined, left or changed, keeps the
last changes of each service in a bounded timeline, and sends each change (the
service's instances now and the changes just made) to every page watching (:class:`~fyerreg.ui._events.Hub`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from ..naming import Instance
from ..registry.subscription import Snapshot
from ._events import Hub, Listener

__all__ = ["Board", "instance_json", "encode", "DEFAULT_HISTORY"]

DEFAULT_HISTORY = 50
"""Changes kept per service timeline."""

Key = Tuple[str, str]
_COMPARED = ("address", "status", "weight", "metadata", "endpoints")


def encode(data: Any) -> str:
    """JSON with ``<``, ``>`` and ``&`` escaped: safe even where a browser might read it as HTML."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _status(instance: Instance) -> str:
    return instance.status.name.lower()


def _value(field: str, value: Any) -> Any:
    if field == "status":
        return value.name.lower()
    if field == "metadata":
        return dict(value)
    if field == "endpoints":
        return {name: e.to_dict() for name, e in value.items()}
    return value


def instance_json(instance: Instance) -> Dict[str, Any]:
    """The instance as the page reads it (status as a name)."""
    return {
        "id": instance.id,
        "version": instance.version,
        "address": instance.address,
        "status": _status(instance),
        "weight": instance.weight,
        "metadata": dict(instance.metadata),
        "endpoints": {name: e.to_dict() for name, e in instance.endpoints.items()},
        "updated_at": instance.updated_at,
    }


@dataclasses.dataclass
class _Service:
    name: str
    timeline: Deque[Dict[str, Any]]
    instances: Dict[Key, Instance] = dataclasses.field(default_factory=dict)
    revision: int = 0
    stale: bool = False
    seq: int = 0

    def json(self, *, timeline: bool = True) -> Dict[str, Any]:
        """The service as the page reads it; without ``timeline`` (a change: the page appends it to its own)."""
        ordered = [self.instances[key] for key in sorted(self.instances)]
        data: Dict[str, Any] = {
            "name": self.name,
            "seq": self.seq,
            "revision": self.revision,
            "stale": self.stale,
            "instances": [instance_json(inst) for inst in ordered],
            "enabled": sum(1 for inst in ordered if inst.enabled),
        }
        if timeline:
            data["timeline"] = list(self.timeline)
        return data


class Board:
    """The state of a namespace as the dashboard shows it; safe to use from any thread.

    ``history`` bounds each service's timeline; ``about`` is shown as is (what the page
    says it looks at: namespace, layout, endpoints; never credentials).
    """

    def __init__(self, hub: Hub, *, history: int = DEFAULT_HISTORY, about: Optional[Dict[str, Any]] = None) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.hub = hub
        self.history = history
        self.about = dict(about or {}, history=history)
        self._services: Dict[str, _Service] = {}
        self._connected = True
        self._lock = threading.Lock()

    # -- fed by the subscriptions -------------------------------------------------------------

    def add_service(self, name: str) -> None:
        """Show ``name`` (with no instances until its first snapshot)."""
        with self._lock:
            if name not in self._services:
                service = self._services[name] = _Service(name, collections.deque(maxlen=self.history))
                self._publish("service", {"service": service.json(timeline=False), "changes": []})

    def apply(self, name: str, snapshot: Snapshot, *, baseline: bool = False) -> List[Dict[str, Any]]:
        """Take ``snapshot`` as the new state of service ``name``; the changes it made (also sent to the pages).

        With ``baseline`` the snapshot is what was there when the dashboard started: shown,
        not recorded as joins.
        """
        with self._lock:
            service = self._services.get(name)
            if service is None:
                service = self._services[name] = _Service(name, collections.deque(maxlen=self.history))
            current = {(inst.version, inst.id): inst for inst in snapshot}
            changes = [] if baseline else _diff(service.instances, current, snapshot.taken_at, snapshot.revision)
            if not changes and not baseline and service.stale == snapshot.stale and service.seq:
                service.instances = current  # a new updated_at alone: nothing to show
                service.revision = snapshot.revision
                return []
            service.instances = current
            service.revision = snapshot.revision
            service.stale = snapshot.stale
            service.seq += 1
            service.timeline.extend(changes)
            self._publish("service", {"service": service.json(timeline=False), "changes": changes})
            return changes

    def set_connected(self, connected: bool) -> None:
        """Whether the dashboard's watches are established (False: the page marks everything stale)."""
        with self._lock:
            if connected == self._connected:
                return
            self._connected = connected
            self._publish("connection", {"connected": connected, "time": time.time()})

    # -- read by the pages --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def service_names(self) -> List[str]:
        with self._lock:
            return sorted(self._services)

    def state(self) -> Dict[str, Any]:
        """Everything the page shows, as JSON-ready data."""
        with self._lock:
            return self._state()

    def listen(self) -> Optional[Listener]:
        """A new listener whose first message is the whole state; None when the hub is full or closed.

        Taken under the same lock as every change, so no change falls between the state
        it starts with and the messages after it.
        """
        with self._lock:
            listener = self.hub.add()
            if listener is not None:
                listener.offer(_message("state", self._state()))
            return listener

    def _state(self) -> Dict[str, Any]:
        return {
            "about": self.about,
            "connected": self._connected,
            "time": time.time(),
            "services": [self._services[name].json() for name in sorted(self._services)],
        }

    def _publish(self, event: str, data: Dict[str, Any]) -> None:
        self.hub.publish(_message(event, data))


def _message(event: str, data: Dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {encode(data)}\n\n".encode()


def _diff(before: Dict[Key, Instance], after: Dict[Key, Instance], when: float,
          revision: int) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        entry: Dict[str, Any] = {"time": when, "revision": revision, "version": key[0], "id": key[1]}
        if old is None and new is not None:
            out.append(dict(entry, event="joined", address=new.address, status=_status(new)))
        elif new is None and old is not None:
            out.append(dict(entry, event="left", address=old.address, status=_status(old)))
        elif old is not None and new is not None:
            changed = {f: [_value(f, getattr(old, f)), _value(f, getattr(new, f))]
                       for f in _COMPARED if getattr(old, f) != getattr(new, f)}
            if changed:
                out.append(dict(entry, event="changed", address=new.address, status=_status(new), changes=changed))
    return out
