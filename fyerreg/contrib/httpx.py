"""httpx transports: ``http://user-service/path`` goes to an instance of ``user-service``.

::

    transport = DiscoveryTransport(discovery, versions={"user-service": "1.0.0"})
    with httpx.Client(transport=transport) as http:
        http.get("http://user-service/users/42")
        http.get("http://user-service.2.0.0/users/42")     # the version in the host

    async with httpx.AsyncClient(transport=AsyncDiscoveryTransport(discovery, version="1.0.0")) as http:
        await http.get("http://user-service/users/42")

The host is ``<service>`` or ``<service>.<version>`` (no port), split and given back its
case by the rule of :mod:`fyerreg.contrib._routing`, the same as the requests adapter's;
without a version in the host it comes from ``versions`` (or ``version`` for every
service). Each request goes to the ``http`` endpoint of an instance picked through
discovery (an instance naming no endpoints is reached at its address; an endpoint marked
TLS is called with https), with the ``Host`` header of that address. Discovery hears
about every attempt: connection errors, timeouts and 5xx answers count as failures for
the balancer and outlier ejection; the call's latency is the time to the response's
headers. Failover follows the :class:`~fyerreg.retry.Failover` policy of the requests
adapter and ``fyerreg.api.Client``: a request that never reached an instance
(``httpx.ConnectError``, ``httpx.ConnectTimeout``) is retried on another, up to
``retries`` times; one that may have reached it only for idempotent methods. 5xx answers
are returned, not retried. A request body that is a stream (an iterator, a generator, a
file) is sent once: it is resent only while none of it has been read, so a failure after
sending it raises even for an idempotent method. Errors are httpx's own; no instance at
all raises :class:`NoInstanceError`, both an ``httpx.ConnectError`` and a
:class:`~fyerreg.errors.NoInstanceAvailableError`.
"""

from __future__ import annotations

import logging
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Collection,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
)

import httpx

from .. import tracing
from ..errors import NoInstanceAvailableError
from ..naming import Instance
from ._routing import ENDPOINT, IDEMPOTENT_METHODS, Failed, Route, Routed, returned, sending, target

if TYPE_CHECKING:
    from ..discovery import Discovery

__all__ = ["AsyncDiscoveryTransport", "DiscoveryTransport", "IDEMPOTENT_METHODS", "NoInstanceError"]

log = logging.getLogger("fyerreg.contrib.httpx")

URL_CACHE = 1024
"""Instance URLs (scheme, address, path and query) kept parsed; the cache starts over when full."""


class NoInstanceError(httpx.ConnectError, NoInstanceAvailableError):
    """No instance of the service in the URL can be picked."""

    def __init__(self, message: str, *, request: Optional[httpx.Request] = None, service: Optional[str] = None,
                 version: Optional[str] = None, reason: Optional[str] = None) -> None:
        httpx.ConnectError.__init__(self, message, request=request)
        self.service, self.version, self.reason = service, version, reason


class _Routing(Routed):
    """What both transports share: the route of a request, its copy for an instance, when to fail over."""

    def __init__(self, discovery: Discovery, versions: Optional[Mapping[str, Optional[str]]], version: Optional[str],
                 services: Collection[str], retries: int, idempotent_methods: Collection[str]) -> None:
        super().__init__(discovery, versions, version, services, retries, idempotent_methods)
        self._urls: Dict[Tuple[str, str, bytes], httpx.URL] = {}

    def _route(self, request: httpx.Request) -> Route:
        return self._router.route(request.url, request.url.host, request.url.port)

    @staticmethod
    def _call(route: Route, request: httpx.Request) -> tracing.Call:
        return tracing.http_call(route.service, route.version, request.method, str(request.url))

    def _no_instance(self, exc: NoInstanceAvailableError, route: Route, request: httpx.Request) -> NoInstanceError:
        return NoInstanceError(f"{exc}{self._router.hint(route)}", request=request, service=exc.service,
                               version=exc.version, reason=exc.reason)

    def _for_instance(self, request: httpx.Request, inst: Instance, stream: Any) -> httpx.Request:
        scheme, address = target(inst, request.url.scheme)
        headers = request.headers.copy()
        headers["Host"] = address
        # Parsing a URL is most of this transport's cost, and RPC-style callers repeat a few paths.
        key = (scheme, address, request.url.raw_path)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= URL_CACHE:
                self._urls.clear()
            url = self._urls[key] = httpx.URL(f"{scheme}://{address}{request.url.raw_path.decode('ascii')}")
        return httpx.Request(request.method, url, headers=headers, stream=stream, extensions=request.extensions)

    def _settle(self, failed: Failed[httpx.Response], request: httpx.Request, tried: int,
                body_read: bool) -> Optional[httpx.Response]:
        """After a failed attempt on ``tried`` instances: the 5xx response to return, or None to try
        another instance; the transport's error is raised when the request goes nowhere else."""
        outcome = failed.outcome
        if isinstance(outcome, httpx.Response):
            return outcome
        if not isinstance(outcome, httpx.TransportError) or not self._again(outcome, request, tried, body_read):
            raise outcome from None
        return None

    def _again(self, exc: httpx.TransportError, request: httpx.Request, tried: int, body_read: bool) -> bool:
        """True when the request that failed with ``exc`` on ``tried`` instances goes to another."""
        delivered = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if not self.failover.allows(tried, delivered=delivered, idempotent=self.failover.is_idempotent(request.method)):
            return False
        if body_read:
            log.info("not resending %s %s after %r: its body is a stream, already read", request.method,
                     request.url, exc)
            return False
        return True


class _ReadOnce(httpx.SyncByteStream):
    """A request body stream that records whether any of it has been read."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream
        self.read = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield from self._stream


class _AsyncReadOnce(httpx.AsyncByteStream):
    """The async :class:`_ReadOnce`."""

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        async for chunk in self._stream:
            yield chunk


class DiscoveryTransport(_Routing, httpx.BaseTransport):
    """An ``httpx.Client`` transport sending ``http://<service>[.<version>]/...`` to instances
    picked through ``discovery``, failing over per the module's rules.

    ``transport`` is the transport each attempt goes through (default: an
    ``httpx.HTTPTransport`` made with ``transport_options``: ``verify``, ``http2``,
    ``limits`` ...); closing this one closes it. ``retries`` and ``idempotent_methods``
    make its :attr:`failover` policy.
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
        transport: Optional[httpx.BaseTransport] = None,
        **transport_options: Any,
    ) -> None:
        if transport is not None and transport_options:
            raise TypeError(f"give transport or its options ({', '.join(sorted(transport_options))}), not both")
        _Routing.__init__(self, discovery, versions, version, services, retries, idempotent_methods)
        self.transport = transport if transport is not None else httpx.HTTPTransport(**transport_options)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to an instance of the service its host names."""
        route = self._route(request)
        body = request.stream
        once = None if isinstance(body, httpx.ByteStream) or not isinstance(body, httpx.SyncByteStream) \
            else _ReadOnce(body)
        tried: List[Instance] = []
        with self._call(route, request) as span:
            while True:
                try:
                    with self.discovery.pick(route.service, route.version, exclude=tried, endpoint=ENDPOINT) as inst:
                        tried.append(inst)
                        with span.attempt(request.method, inst) as attempt:
                            sent = self._for_instance(request, inst, once if once is not None else body)
                            attempt.inject(sent.headers)
                            with sending(attempt, httpx.TransportError):
                                response = self.transport.handle_request(sent)
                            attempt.answered(response.status_code)
                        return returned(span, response)
                except NoInstanceAvailableError as exc:
                    raise self._no_instance(exc, route, request) from exc
                except Failed as failed:
                    answer = self._settle(failed, request, len(tried), once is not None and once.read)
                    if answer is not None:
                        span.answered(answer.status_code)
                        return answer

    def close(self) -> None:
        """Close the inner transport (not the discovery)."""
        self.transport.close()


class AsyncDiscoveryTransport(_Routing, httpx.AsyncBaseTransport):
    """The :class:`DiscoveryTransport` of an ``httpx.AsyncClient`` under asyncio: picks with
    ``async with discovery.pick(...)``, so the first subscribe to a service happens off the event loop.

    ``transport`` defaults to an ``httpx.AsyncHTTPTransport`` made with
    ``transport_options``. A cancelled request leaves no call counted in flight.
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
        transport: Optional[httpx.AsyncBaseTransport] = None,
        **transport_options: Any,
    ) -> None:
        if transport is not None and transport_options:
            raise TypeError(f"give transport or its options ({', '.join(sorted(transport_options))}), not both")
        _Routing.__init__(self, discovery, versions, version, services, retries, idempotent_methods)
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport(**transport_options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to an instance of the service its host names."""
        route = self._route(request)
        body = request.stream
        once = None if isinstance(body, httpx.ByteStream) or not isinstance(body, httpx.AsyncByteStream) \
            else _AsyncReadOnce(body)
        tried: List[Instance] = []
        with self._call(route, request) as span:
            while True:
                try:
                    async with self.discovery.pick(route.service, route.version, exclude=tried,
                                                   endpoint=ENDPOINT) as inst:
                        tried.append(inst)
                        with span.attempt(request.method, inst) as attempt:
                            sent = self._for_instance(request, inst, once if once is not None else body)
                            attempt.inject(sent.headers)
                            with sending(attempt, httpx.TransportError):
                                response = await self.transport.handle_async_request(sent)
                            attempt.answered(response.status_code)
                        return returned(span, response)
                except NoInstanceAvailableError as exc:
                    raise self._no_instance(exc, route, request) from exc
                except Failed as failed:
                    answer = self._settle(failed, request, len(tried), once is not None and once.read)
                    if answer is not None:
                        span.answered(answer.status_code)
                        return answer

    async def aclose(self) -> None:
        """Close the inner transport (not the discovery)."""
        await self.transport.aclose()
