"""A requests transport adapter: ``http://user-service/path`` goes to an instance of ``user-service``.

::

    session = requests.Session()
    session.mount("http://user-service/", DiscoveryAdapter(discovery, versions={"user-service": "1.0.0"}))
    session.get("http://user-service/users/42", timeout=5)

or ``fyerreg.contrib.requests.session(discovery, {"user-service": "1.0.0"})``.

The host part of the URL is ``<service>`` or ``<service>.<version>`` (no port); without
a version in the host it comes from ``versions`` (or ``version`` for every service).
requests lowercases a URL's host, so the adapter maps it back to the service names it
knows, with their case: the keys of ``versions`` and the names in ``services``. How a
host with dots splits into service and version is the rule of
:mod:`fyerreg.contrib._routing`, shared with the httpx transports. Each request is sent to
the ``http`` endpoint of an instance picked through discovery (an instance naming no
endpoints is reached at its address; an endpoint marked TLS is called with https), whose
outlier detection hears about every call (connection failures, timeouts and 5xx answers
count as failures). Failover follows the same :class:`~fyerreg.retry.Failover` policy as
``fyerreg.api.Client``: a request that never reached an instance (connection refused,
connect timeout) is retried on another one, up to ``retries`` times; one that may have
reached it (the connection broke afterwards) is retried only for idempotent HTTP methods.
Errors are requests' own exceptions; no instance at all raises :class:`NoInstanceError`,
both a ``requests.ConnectionError`` and a :class:`~fyerreg.errors.NoInstanceAvailableError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, List, Mapping, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from urllib3.exceptions import MaxRetryError, NewConnectionError

from .. import tracing
from ..errors import NoInstanceAvailableError
from ..naming import Instance
from ._routing import ENDPOINT, IDEMPOTENT_METHODS, Failed, Routed, returned, sending, target

if TYPE_CHECKING:
    from ..discovery import Discovery

__all__ = ["IDEMPOTENT_METHODS", "DiscoveryAdapter", "NoInstanceError", "session"]

class NoInstanceError(RequestsConnectionError, NoInstanceAvailableError):
    """No instance of the service in the URL can be picked."""


class DiscoveryAdapter(Routed, HTTPAdapter):
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
        Routed.__init__(self, discovery, versions, version, services, retries, idempotent_methods)
        HTTPAdapter.__init__(self, max_retries=0, **kwargs)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Union[bool, str] = True, cert: Any = None, proxies: Optional[Mapping[str, str]] = None
             ) -> requests.Response:
        """Send ``request`` to an instance of the service named by its host, failing over per the rules above."""
        parts = urlsplit(request.url or "")
        route = self._router.route(request.url or "", parts.hostname, parts.port)
        method = (request.method or "GET").upper()
        resend = self.failover.is_idempotent(method)
        tried: List[Instance] = []
        with tracing.http_call(route.service, route.version, method, request.url or "") as span:
            while True:
                try:
                    with self.discovery.pick(route.service, route.version, exclude=tried, endpoint=ENDPOINT) as inst:
                        tried.append(inst)
                        with span.attempt(method, inst) as attempt:
                            sent = request.copy()
                            scheme, address = target(inst, parts.scheme)
                            sent.url = urlunsplit((scheme, address, parts.path, parts.query, parts.fragment))
                            attempt.inject(sent.headers)
                            with sending(attempt, (requests.RequestException, OSError)):
                                response = super().send(sent, stream=stream, timeout=timeout, verify=verify,
                                                        cert=cert, proxies=proxies)
                            attempt.answered(response.status_code)
                        return returned(span, response)
                except NoInstanceAvailableError as exc:
                    raise NoInstanceError(f"{exc}{self._router.hint(route)}", request=request) from exc
                except Failed as failed:
                    outcome = failed.outcome
                    if isinstance(outcome, requests.Response):
                        span.answered(outcome.status_code)
                        return outcome
                    if not self.failover.allows(len(tried), delivered=not _undelivered(outcome), idempotent=resend):
                        raise outcome from None


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
    """A ``requests.Session`` resolving ``<scheme>://<service>/`` and ``<scheme>://<service>.<version>/``
    for each of ``services`` (name -> version)."""
    sess = requests.Session()
    adapter = DiscoveryAdapter(discovery, versions=services, **adapter_options)
    for name in services:
        sess.mount(f"{scheme}://{name}/", adapter)
        sess.mount(f"{scheme}://{name}.", adapter)
    return sess
