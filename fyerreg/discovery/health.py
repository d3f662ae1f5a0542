"""Client-side outlier ejection: instances that keep failing are skipped for a while."""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Dict, Iterable, List, Optional, Set

from .balancer.base import InstanceKey

__all__ = ["Ejection"]


@dataclasses.dataclass(frozen=True)
class Ejection:
    """When and for how long an instance that keeps failing is taken out of rotation.

    After ``consecutive_failures`` failed calls in a row an instance is ejected for
    ``base_time`` seconds times the number of its recent ejections, capped at
    ``max_time``; each ``base_time`` spent back in rotation forgives one past
    ejection. At most ``max_percent`` % of a service's instances are ejected at once
    (but one may always be). Ejected instances come back by themselves.
    """

    consecutive_failures: int = 5
    base_time: float = 30.0
    max_time: float = 300.0
    max_percent: float = 50.0

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be >= 1")
        if self.base_time <= 0:
            raise ValueError("base_time must be > 0")
        if self.max_time < self.base_time:
            raise ValueError("max_time must be >= base_time")
        if not 0 <= self.max_percent <= 100:
            raise ValueError("max_percent must be in 0..100")


class _Host:
    __slots__ = ("failures", "ejections", "ejected_until", "back_since", "total_ejections")

    def __init__(self) -> None:
        self.failures = 0
        self.ejections = 0
        self.ejected_until: Optional[float] = None
        self.back_since: Optional[float] = None
        self.total_ejections = 0


class HealthTracker:
    """Consecutive failures and ejections of the instances of one (service, version)."""

    def __init__(self, policy: Ejection) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._hosts: Dict[InstanceKey, _Host] = {}
        self._ejected: Set[InstanceKey] = set()

    @property
    def ejected(self) -> Set[InstanceKey]:
        """Keys of the instances ejected now (a copy)."""
        with self._lock:
            return set(self._ejected)

    def record(self, key: InstanceKey, failed: bool, now: float, total: int) -> Optional[float]:
        """Note one call's outcome; return the ejection time when this ejected the instance.

        ``total`` is the number of usable instances of the service, for ``max_percent``.
        """
        policy = self.policy
        with self._lock:
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = _Host()
            if not failed:
                host.failures = 0
                return None
            host.failures += 1
            if host.ejected_until is not None or host.failures < policy.consecutive_failures:
                return None
            allowed = math.floor(total * policy.max_percent / 100)
            if policy.max_percent > 0:
                allowed = max(allowed, 1)
            if len(self._ejected) >= allowed:
                return None
            if host.back_since is not None:
                forgiven = int((now - host.back_since) / policy.base_time)
                host.ejections = max(0, host.ejections - forgiven)
            # Past the cap, more repeats would only lengthen the time needed to be forgiven.
            host.ejections = min(host.ejections + 1, math.ceil(policy.max_time / policy.base_time))
            host.total_ejections += 1
            duration = min(policy.base_time * host.ejections, policy.max_time)
            host.ejected_until = now + duration
            self._ejected.add(key)
            return duration

    def expire(self, now: float) -> List[InstanceKey]:
        """Return to rotation every instance whose ejection has ended; their keys."""
        back: List[InstanceKey] = []
        with self._lock:
            for key in list(self._ejected):
                host = self._hosts[key]
                if host.ejected_until is not None and host.ejected_until <= now:
                    host.ejected_until = None
                    host.back_since = now
                    host.failures = 0
                    self._ejected.discard(key)
                    back.append(key)
        return back

    def next_deadline(self) -> Optional[float]:
        """When the next ejection ends (None when nothing is ejected)."""
        with self._lock:
            ends = [self._hosts[k].ejected_until for k in self._ejected]
            return min((e for e in ends if e is not None), default=None)

    def retain(self, keys: Iterable[InstanceKey]) -> None:
        """Forget instances that are no longer in the service."""
        keep = set(keys)
        with self._lock:
            self._hosts = {k: h for k, h in self._hosts.items() if k in keep}
            self._ejected &= keep

    def ejections(self, key: InstanceKey) -> int:
        """How many times the instance was ejected since it was first seen."""
        with self._lock:
            host = self._hosts.get(key)
            return host.total_ejections if host is not None else 0
