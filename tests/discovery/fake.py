"""TEMPORARY in-test Registry until the memory backend lands (then: MemoryRegistry, and delete this)."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

from fyerreg import Instance, RegistrationState, Registry, Snapshot, Subscription
from fyerreg.errors import RegistryUnavailableError


class FakeRegistry(Registry):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._records: Dict[Tuple[str, str, str], Instance] = {}
        self._subs: List[Subscription] = []
        self._rev = 0
        self.available = True

    def set_available(self, ok: bool) -> None:
        self.available = ok

    def _check(self) -> None:
        if not self.available:
            raise RegistryUnavailableError("fake registry unavailable")

    def _snapshot(self, service: str, version: Optional[str]) -> Snapshot:
        return Snapshot([i for i in self._records.values()
                         if i.service == service and (version is None or i.version == version)], revision=self._rev)

    def _publish(self, service: str) -> None:
        for sub in list(self._subs):
            if sub.service == service:
                sub.publish(self._snapshot(sub.service, sub.version))

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        self._check()
        with self._lock:
            self._rev += 1
            self._records[instance.key] = instance
            self._publish(instance.service)

    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._do_register(instance, timeout=timeout, exclusive=False)

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._check()
        with self._lock:
            self._rev += 1
            self._records.pop(instance.key, None)
            self._publish(instance.service)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        self._check()
        return list(self._snapshot(service, version))

    def _do_subscribe(self, service: str, version: Optional[str], *, maxsize: int,
                      timeout: Optional[float]) -> Subscription:
        self._check()
        with self._lock:
            sub = Subscription(service, version, maxsize=maxsize, on_close=self._subs.remove)
            sub.publish(self._snapshot(service, version))
            self._subs.append(sub)
            return sub

    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None:
        for sub in [s for s in self._subs if s.service == service and s.version == version]:
            sub.close()

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        return RegistrationState(registered=instance.key in self._records)

    def _do_stats(self) -> Dict[str, Any]:
        return {}

    def _do_close(self, *, timeout: Optional[float]) -> None:
        for sub in list(self._subs):
            sub.close()
