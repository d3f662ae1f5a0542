"""A requests transport adapter: ``http://user-service/path`` goes to an instance of ``user-service``.

::

    session = requests.Session()
    session.mount("http://user-service/", DiscoveryAdapter(discovery, versions={"user-service": "1.0.0"}))
    session.get("http://user-service/users/42", timeout=5)

or ``fyerreg.contrib.requests.session(discovery, {"user-service": "1.0.0"})``.

The host part of the URL is the service name (no port); the version comes from
``versions`` (or ``version`` for every service). requests lowercases a URL's host, so
the adapter maps it back to the service names it knows, with their case: the keys of
``versions`` and the names in ``services``; a host matching none of them is used as
the service name as it is. Each request is sent to an instance
picked through discovery, whose outlier detection hears about every call (connection
failures, timeouts and 5xx answers count as failures). Failover follows the same
:class:`~fyerreg.retry.Failover` policy as ``fyerreg.api.Client``: a request that never
reached an instance (connection refused, connect timeout) is retried on another one, up
to ``retries`` times; one that may have reached it (the connection broke afterwards) is
retried only for idempotent HTTP methods. Errors are requests' own exceptions; no instance at all raises
:class:`NoInstanceError`, both a ``requests.ConnectionError`` and a
:class:`~fyerreg.errors.NoInstanceAvailableError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Dict, FrozenSet, List, Mapping, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from urllib3.exceptions import MaxRetryError, NewConnectionError

from ..errors import NoInstanceAvailableError
from ..naming import Instance
from ..retry import Failover

if TYPE_CHECKING:
    from ..discovery import Discovery

__all__ = ["DiscoveryAdapter", "NoInstanceError", "session"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class NoInstanceError(RequestsConnectionError, NoInstanceAvailableError):
    """No instance of the service in the URL can be picked."""


class _Failed(Exception):
    """Raised inside a pick so discovery counts the call as failed."""

    def __init__(self, outcome: Union[requests.Response, BaseException]) -> None:
        super().__init__(repr(outcome))
        self.outcome = outcome


class DiscoveryAdapter(HTTPAdapter):
    """Sends requests for ``http://<service>/...`` to instances picked through ``discovery``.

    ``retries`` and ``idempotent_methods`` make its :attr:`failover` policy (a
    :class:`~fyerreg.retry.Failover`, the one ``fyerreg.api.Client`` uses too).
    """

    def __init__(
        self,
        discovery: Discovery,
        *,
        versions: Optional[Mapping[str, Optional[str]]] = None,
        version: Optional[str] = None,
        services: Collection[str] = (),
        retries: int = 2,
        idempotent_methods: Collection[str] = IDEMPOTENT_METHODS,
        **kwargs: Any,
    ) -> None:
        from ..discovery import Discovery

        if not isinstance(discovery, Discovery):
            raise TypeError(f"discovery must be a fyerreg Discovery, got {type(discovery).__name__}")
        failover = Failover(retries, idempotent_methods)  # raises on a bad retries or idempotent_methods
        if isinstance(services, str):
            raise TypeError("services must be a collection of service names, not a str")
        self.versions = dict(versions or {})
        self._names = _names_by_host([*self.versions, *services])
        super().__init__(max_retries=0, **kwargs)
        self.discovery = discovery
        self.version = version
        self.failover = Failover(retries, {method.upper() for method in failover.idempotent_methods})

    @property
    def retries(self) -> int:
        """How many more instances a failed request may be sent to."""
        return self.failover.retries

    @property
    def idempotent_methods(self) -> FrozenSet[str]:
        """The HTTP methods retried elsewhere even when the request may have been processed."""
        return self.failover.idempotent_methods

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Union[bool, str] = True, cert: Any = None, proxies: Optional[Mapping[str, str]] = None
             ) -> requests.Response:
        """Send ``request`` to an instance of the service named by its host, failing over per the rules above."""
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        if parts.port is not None or not host:
            raise ValueError(f"{request.url!r}: the host must be a service name, without a port")
        service = self._names.get(host, host)
        version = self.versions.get(service, self.version)
        resend = self.failover.is_idempotent((request.method or "GET").upper())
        tried: List[Instance] = []
        while True:
            try:
                with self.discovery.pick(service, version, exclude=tried) as inst:
                    tried.append(inst)
                    sent = request.copy()
                    sent.url = urlunsplit((parts.scheme, inst.address, parts.path, parts.query, parts.fragment))
                    try:
                        response = super().send(sent, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                                proxies=proxies)
                    except (requests.RequestException, OSError) as exc:
                        raise _Failed(exc) from exc
                    if response.status_code >= 500:
                        raise _Failed(response)
                    return response
            except NoInstanceAvailableError as exc:
                hint = "" if host in self._names else (
                    " (requests lowercases URL hosts: name the service in versions= or services= "
                    "to reach it with its case)")
                raise NoInstanceError(f"{exc}{hint}", request=request) from exc
            except _Failed as failed:
                outcome = failed.outcome
                if isinstance(outcome, requests.Response):
                    return outcome
                if not self.failover.allows(len(tried), delivered=not _undelivered(outcome), idempotent=resend):
                    raise outcome from None


def _names_by_host(names: Collection[str]) -> Dict[str, str]:
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


def _undelivered(exc: BaseException) -> bool:
    """True when requests failed before the request reached the instance (nothing was processed)."""
    if isinstance(exc, ConnectTimeout):
        return True
    if isinstance(exc, RequestsConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, NewConnectionError)
    return False


def session(
    discovery: Discovery,
    services: Mapping[str, Optional[str]],
    *,
    scheme: str = "http",
    **adapter_options: Any,
) -> requests.Session:
    """A ``requests.Session`` resolving ``<scheme>://<service>/`` for each of ``services`` (name -> version)."""
    sess = requests.Session()
    adapter = DiscoveryAdapter(discovery, versions=services, **adapter_options)
    for name in services:
        sess.mount(f"{scheme}://{name}/", adapter)
    return sess
