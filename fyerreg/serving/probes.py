"""Kubernetes probes of a serving registration: ``/healthz`` (liveness) and ``/readyz`` (readiness).

``healthz``: the process is alive and its registration healthy. 200 while the first
registration is still under way (``"starting"``: a slow or unreachable etcd at start must
not get the pod restarted in a loop; readiness keeps traffic away meanwhile), while
registered with a recent heartbeat, and while draining; 503 once the registry no longer
holds the record, when the last heartbeat is older than ``stale_after`` (default: the
registry's lease ttl, the time after which etcd has dropped the record anyway), or when
the registration gave up.

``readyz``: registered, advertised ``ENABLED`` and not draining; 503 otherwise (before the
registration, while disabled by a health check or maintenance, and from the first moment
of a shutdown). Bodies are small JSON objects saying why; they never carry credentials
or metadata. The integrations serve them (:mod:`fyerreg.serving.http_probes`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Union

from ..errors import RegistryError
from ..naming import Status
from ..registry.base import Registry
from .registration import ServingRegistration

__all__ = ["DEFAULT_HEALTHZ_PATH", "DEFAULT_READYZ_PATH", "DEFAULT_UNREADY_DELAY", "ProbeAnswer", "ProbeSource",
           "Probes", "check_path"]

DEFAULT_HEALTHZ_PATH = "/healthz"
DEFAULT_READYZ_PATH = "/readyz"
DEFAULT_UNREADY_DELAY = 1.0
"""Seconds between "readiness fails" and the deregistration when an integration serves probes:
time for a load balancer polling ``/readyz`` every second to see the change first."""

OK = 200
UNAVAILABLE = 503


@dataclasses.dataclass(frozen=True)
class ProbeAnswer:
    """What a probe answers: an HTTP status (200 or 503) and a small JSON body."""

    status: int
    body: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """True for 200."""
        return self.status == OK

    def encode(self) -> bytes:
        """The body as UTF-8 JSON."""
        return json.dumps(dict(self.body), sort_keys=True).encode()

    def to_dict(self) -> Dict[str, Any]:
        """Status and body, as one JSON-ready dict (how the gunicorn registrar hands it to workers)."""
        return {"status": self.status, "body": dict(self.body)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeAnswer:
        """The answer :meth:`to_dict` made."""
        status = data.get("status")
        body = data.get("body")
        if status not in (OK, UNAVAILABLE) or not isinstance(body, dict):
            raise ValueError(f"not a probe answer: {data!r}")
        return cls(int(status), body)


class ProbeSource(Protocol):
    """Anything answering the two probes (a :class:`Probes`, or a gunicorn worker's view of its master's)."""

    def healthz(self) -> ProbeAnswer: ...

    def readyz(self) -> ProbeAnswer: ...


RegistrationSource = Union[ServingRegistration, Callable[[], Optional[ServingRegistration]], None]


class Probes:
    """``healthz()`` and ``readyz()`` of one :class:`~fyerreg.serving.ServingRegistration`.

    ``registration`` is the registration, or a callable returning it (None while it does
    not exist yet, e.g. before an ASGI server bound its port: "starting"). ``stale_after``
    is how old the last heartbeat may be before ``healthz`` fails (default: the
    registry's ttl; never checked for registries without leases). Answering reads only
    this process's state: no registry call, nothing that waits on etcd.
    """

    def __init__(self, registration: RegistrationSource, *, stale_after: Optional[float] = None,
                 clock: Callable[[], float] = time.time) -> None:
        if stale_after is not None and not stale_after > 0:
            raise ValueError(f"stale_after must be > 0, got {stale_after!r}")
        if registration is None or isinstance(registration, ServingRegistration):
            fixed = registration
            self._registration: Callable[[], Optional[ServingRegistration]] = lambda: fixed
        elif callable(registration):
            self._registration = registration
        else:
            raise TypeError(f"registration must be a ServingRegistration or a callable, "
                            f"got {type(registration).__name__}")
        self._stale_after = stale_after
        self._clock = clock

    def healthz(self) -> ProbeAnswer:
        """Liveness: 200 ``ok``/``starting``/``draining``; 503 when the registration is lost or stale."""
        registration = self._registration()
        if registration is None:
            return _answer(OK, "starting", "the server is starting; not registered yet")
        about = _about(registration)
        if registration.draining:
            return _answer(OK, "draining", "shutting down", about)
        if not registration.registered:
            if not registration.settled:
                return _answer(OK, "starting", "registering", about)
            return _answer(UNAVAILABLE, "unregistered", "the registration gave up", about)
        try:
            state = registration.registry.registration_state(registration.instance)
        except RegistryError as exc:  # a registry closed under the registration
            return _answer(UNAVAILABLE, "lost", f"the registry cannot say: {type(exc).__name__}", about)
        if not state.registered:
            return _answer(UNAVAILABLE, "lost", "the registry no longer holds this instance", about)
        stale_after = self._stale_after or lease_ttl(registration.registry)
        if state.last_refresh is not None and stale_after is not None:
            age = self._clock() - state.last_refresh
            if age > stale_after:
                return _answer(UNAVAILABLE, "stale", f"last heartbeat {age:.1f}s ago (limit {stale_after:g}s)",
                               {**about, "last_heartbeat_age": round(age, 3)})
        return _answer(OK, "ok", "registered", about)

    def readyz(self) -> ProbeAnswer:
        """Readiness: 200 while registered, enabled and not draining; 503 otherwise."""
        registration = self._registration()
        if registration is None:
            return _answer(UNAVAILABLE, "starting", "the server is starting; not registered yet")
        about = _about(registration)
        if registration.draining:
            return _answer(UNAVAILABLE, "draining", "shutting down", about)
        if not registration.registered:
            return _answer(UNAVAILABLE, "unregistered", "not registered (yet)", about)
        if registration.instance.status != Status.ENABLED:
            return _answer(UNAVAILABLE, "disabled", "advertised as disabled", about)
        return _answer(OK, "ready", "registered and enabled", about)


def lease_ttl(registry: Registry) -> Optional[float]:
    """The lease ttl of ``registry`` in seconds, when it has one (``EtcdRegistry``, ``MemoryRegistry``)."""
    ttl = getattr(registry, "ttl", None)
    if ttl is None:
        ttl = getattr(getattr(registry, "options", None), "ttl", None)
    return float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else None


def check_path(name: str, path: object) -> str:
    """``path`` when it is an absolute URL path; ValueError naming ``name`` otherwise."""
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "?# "):
        raise ValueError(f"{name} must be a URL path starting with '/', got {path!r}")
    return path


def _about(registration: ServingRegistration) -> Dict[str, Any]:
    instance = registration.instance
    return {"service": instance.service, "version": instance.version, "id": instance.id,
            "address": instance.address}


def _answer(status: int, state: str, reason: str, about: Optional[Mapping[str, Any]] = None) -> ProbeAnswer:
    return ProbeAnswer(status, {"status": state, "reason": reason, **(about or {})})
