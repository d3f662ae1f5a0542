"""TEMPORARY stand-in for MemoryRegistry/MemoryStore until the memory backend is on main; then delete."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

from fyerreg import Instance, RegistrationState, Registry, Snapshot, Subscription
from fyerreg.errors import RegistryUnavailableError


class MemoryStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: Dict[Tuple[str, str, str], Instance] = {}
        self.subs: List[Subscription] = []
        self.rev = 0


class MemoryRegistry(Registry):
    def __init__(self, *, store: Optional[MemoryStore] = None) -> None:
        super().__init__()
        self.store = store or MemoryStore()
        self._mine: List[Subscription] = []
        self.available = True

    def set_available(self, ok: bool) -> None:
        self.available = ok

    def _check(self) -> None:
        if not self.available:
            raise RegistryUnavailableError("fake registry unavailable")

    def _snapshot(self, service: str, version: Optional[str]) -> Snapshot:
        return Snapshot([i for i in self.store.records.values()
                         if i.service == service and (version is None or i.version == version)],
                        revision=self.store.rev)

    def _change(self, instance: Instance, present: bool) -> None:
        self._check()
        st = self.store
        with st.lock:
            st.rev += 1
            if present:
                st.records[instance.key] = instance
            else:
                st.records.pop(instance.key, None)
            for sub in list(st.subs):
                if sub.service == instance.service:
                    sub.publish(self._snapshot(sub.service, sub.version))

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        self._change(instance, True)

    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._change(instance, True)

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self._change(instance, False)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        self._check()
        return list(self._snapshot(service, version))

    def _do_subscribe(self, service: str, version: Optional[str], *, maxsize: int,
                      timeout: Optional[float]) -> Subscription:
        self._check()
        with self.store.lock:
            sub = Subscription(service, version, maxsize=maxsize, on_close=self._closed_sub)
            sub.publish(self._snapshot(service, version))
            self.store.subs.append(sub)
            self._mine.append(sub)
            return sub

    def _closed_sub(self, sub: Subscription) -> None:
        with self.store.lock:
            self.store.subs.remove(sub)
            self._mine.remove(sub)

    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None:
        for sub in [s for s in self._mine if s.service == service and s.version == version]:
            sub.close()

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        return RegistrationState(registered=instance.key in self.store.records)

    def _do_stats(self) -> Dict[str, Any]:
        return {}

    def _do_close(self, *, timeout: Optional[float]) -> None:
        for sub in list(self._mine):
            sub.close()
