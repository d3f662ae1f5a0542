"""What the HTTP client adapters share: which service (and version) a URL's host names, which
methods are idempotent, and how a failed call is marked inside a pick.

Used by :mod:`fyerreg.contrib.requests` and :mod:`fyerreg.contrib.httpx`. A host is
``<service>`` or ``<service>.<version>``; both requests and httpx lowercase it, so the
names the router knows (the keys of ``versions`` and ``services``) give it back its case.
Service names and versions may contain dots; the rule, in order:

1. a host equal to a known service name is that service, at the version configured for
   it (``versions[name]``, else ``version``);
2. a host ``<known name>.<rest>`` is that service at version ``<rest>`` (the longest
   known name wins);
3. any other host is split at its first dot followed by a digit, or by ``v`` and a
   digit: ``user-service.1.0.0`` is ``user-service`` at ``1.0.0``, ``greeter.v1`` is
   ``greeter`` at ``v1``, ``billing.eu`` is the service ``billing.eu`` at the configured
   version.

A version in the host arrives lowercased; name a version holding capitals in ``versions``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import (
    TYPE_CHECKING,
    Collection,
    Dict,
    FrozenSet,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from ..naming import Instance
from ..retry import Failover

if TYPE_CHECKING:
    from .. import tracing
    from ..discovery import Discovery

__all__ = ["ENDPOINT", "IDEMPOTENT_METHODS", "Failed", "Route", "Routed", "Router", "failed_status", "returned",
           "sending", "target"]

ENDPOINT = "http"
"""The named endpoint of an instance the HTTP adapters pick and call."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""The HTTP methods retried on another instance even when the request may have been processed."""

R = TypeVar("R")

_VERSION_DOT = re.compile(r"\.(?=v?[0-9])")


@dataclasses.dataclass(frozen=True)
class Route:
    """Where a request goes: ``service`` at ``version`` (None: any version)."""

    service: str
    version: Optional[str]
    known: bool
    """True when the service name is one the router was given (so its case is right)."""


class Router:
    """Maps URL hosts to :class:`Route`\\ s by the module's rule.

    ``versions``: service name -> version (None: any); ``version``: the version of every
    other service; ``services``: more names to recognise (at ``version``). Raises
    ValueError for an empty name or two names that differ only in case.
    """

    def __init__(self, versions: Optional[Mapping[str, Optional[str]]] = None, version: Optional[str] = None,
                 services: Collection[str] = ()) -> None:
        if isinstance(services, str):
            raise TypeError("services must be a collection of service names, not a str")
        if version is not None and (not isinstance(version, str) or not version):
            raise ValueError(f"version must be a non-empty str or None, got {version!r}")
        self.versions: Dict[str, Optional[str]] = dict(versions or {})
        self.version = version
        self._names = names_by_host([*self.versions, *services])
        self._longest_first: List[str] = sorted(self._names, key=len, reverse=True)

    def route(self, url: object, host: Optional[str], port: Optional[int]) -> Route:
        """The route of a request for ``url`` (whose parsed ``host`` and ``port`` are given)."""
        if port is not None or not host:
            raise ValueError(f"{str(url)!r}: the host must be a service name (optionally .version), without a port")
        host = host.lower()
        name = self._names.get(host)
        if name is not None:
            return Route(name, self.versions.get(name, self.version), True)
        for known in self._longest_first:
            if host.startswith(known) and host[len(known):len(known) + 1] == "." and len(host) > len(known) + 1:
                return Route(self._names[known], host[len(known) + 1:], True)
        split = _VERSION_DOT.search(host)
        if split is None:
            return Route(host, self.versions.get(host, self.version), False)
        return Route(host[:split.start()], host[split.end():], False)

    @staticmethod
    def hint(route: Route) -> str:
        """What to add to a "no instance" message for ``route``: how to keep a name's case."""
        if route.known:
            return ""
        return (" (URL hosts arrive lowercased: name the service in versions= or services= "
                "to reach it with its case)")


class Routed:
    """What both HTTP adapters are configured with: the ``discovery`` they pick through, the
    :class:`Router` of URL hosts, and their :attr:`failover` policy (the one
    :class:`~fyerreg.retry.Failover`, its methods upper-cased). Raises before anything is kept
    when an option is bad."""

    def __init__(self, discovery: Discovery, versions: Optional[Mapping[str, Optional[str]]], version: Optional[str],
                 services: Collection[str], retries: int, idempotent_methods: Collection[str]) -> None:
        from ..discovery import Discovery

        if not isinstance(discovery, Discovery):
            raise TypeError(f"discovery must be a fyerreg Discovery, got {type(discovery).__name__}")
        failover = Failover(retries, idempotent_methods)  # raises on a bad retries or idempotent_methods
        self._router = Router(versions, version, services)
        self.discovery = discovery
        self.failover = Failover(retries, {method.upper() for method in failover.idempotent_methods})

    @property
    def versions(self) -> Dict[str, Optional[str]]:
        """The version of each service named here (None: any version)."""
        return self._router.versions

    @property
    def version(self) -> Optional[str]:
        """The version of services not in :attr:`versions` (None: any version)."""
        return self._router.version

    @property
    def retries(self) -> int:
        """How many more instances a failed request may be sent to."""
        return self.failover.retries

    @property
    def idempotent_methods(self) -> FrozenSet[str]:
        """The HTTP methods retried elsewhere even when the request may have been processed."""
        return self.failover.idempotent_methods


def names_by_host(names: Collection[str]) -> Dict[str, str]:
    """Each service name under the lowercase host a URL naming it arrives with."""
    by_host: Dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"service names must be non-empty str, got {name!r}")
        other = by_host.setdefault(name.lower(), name)
        if other != name:
            raise ValueError(f"service names {other!r} and {name!r} differ only in case: "
                             "a URL's host cannot tell them apart")
    return by_host


class Failed(Exception, Generic[R]):
    """Raised inside a pick so discovery counts the call as failed; ``outcome`` is the answer
    (a 5xx response, returned to the caller) or the transport's exception."""

    def __init__(self, outcome: Union[R, BaseException]) -> None:
        super().__init__(repr(outcome))
        self.outcome = outcome


def failed_status(status: int) -> bool:
    """True for an HTTP status that counts as a failed call for balancers and ejection (5xx)."""
    return status >= 500


@contextlib.contextmanager
def sending(attempt: tracing.Attempt,
            errors: Union[Type[BaseException], Tuple[Type[BaseException], ...]]) -> Iterator[None]:
    """Around sending a request on an instance: one of the transport's ``errors`` fails the
    attempt and is raised as :class:`Failed` (the call failed on that instance)."""
    try:
        yield
    except errors as exc:
        attempt.fail(exc)
        raise Failed(exc) from exc


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...


Answer = TypeVar("Answer", bound=_Response)


def returned(call: tracing.Call, response: Answer) -> Answer:
    """``response``, the call's answer; raised as :class:`Failed` when its status counts as failed."""
    if failed_status(response.status_code):
        raise Failed(response)
    call.answered(response.status_code)
    return response


def target(inst: Instance, scheme: str) -> Tuple[str, str]:
    """The scheme and ``host:port`` a request for ``scheme`` goes to on ``inst`` (picked with
    ``endpoint=ENDPOINT``): its ``http`` endpoint, with https when that is marked TLS."""
    endpoint = inst.endpoint(ENDPOINT)
    if endpoint is None:
        return scheme, inst.address
    return ("https" if endpoint.tls else scheme), endpoint.address
