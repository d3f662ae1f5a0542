"""``AsyncDiscoveryChannel``: the ``grpc.aio`` form of :class:`~fyerreg.contrib.grpc.DiscoveryChannel`."""

from __future__ import annotations

import asyncio
import time
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import grpc
import grpc.aio

from ...errors import NoInstanceAvailableError
from ...naming import Endpoint, Instance
from ._base import Routing, call_kwargs, graded
from ._pool import Entry
from ._status import INSTANCE_FAILURES, NoInstanceError, time_left

if TYPE_CHECKING:
    from ...discovery import Discovery
    from ...discovery._pick import Pick

__all__ = ["AsyncDiscoveryChannel"]

Attempt = Tuple["Pick", Entry[Any]]


class AsyncDiscoveryChannel(grpc.aio.Channel):  # type: ignore[misc]
    """A ``grpc.aio.Channel`` for ``service`` (``version``) whose calls go to instances picked
    through ``discovery``, with the rules of :class:`~fyerreg.contrib.grpc.DiscoveryChannel`.

    Picks never block the event loop: the first one of the service subscribes in a
    thread (``await discovery.pick(...)``), later ones are local. A unary call returns an
    awaitable of its response; a unary-stream call an async iterable of responses (also
    read with ``await read()``). Stream-unary and stream-stream calls go to one instance
    without failover; their pick is synchronous, so make a unary call (or ``await
    discovery.aselect(service)``) first when the service may not have been picked yet.
    A cancelled call is not counted against its instance. Like any ``grpc.aio`` channel it
    belongs to one event loop. ``await close()`` closes every instance's channel.
    """

    def __init__(
        self,
        discovery: Discovery,
        service: str,
        version: Optional[str] = None,
        *,
        retries: int = 2,
        idempotent_methods: Collection[str] = frozenset(),
        failure_codes: Collection[grpc.StatusCode] = INSTANCE_FAILURES,
        options: Sequence[Tuple[str, Any]] = (),
        credentials: Optional[grpc.ChannelCredentials] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> None:
        self._routing = _AioRouting(
            discovery, service, version, retries=retries, idempotent_methods=idempotent_methods,
            failure_codes=failure_codes, options=options, credentials=credentials, compression=compression)

    @property
    def routing(self) -> Routing[Any]:
        """The service, version, failover policy and open channels behind this channel."""
        return self._routing

    def addresses(self) -> List[str]:
        """The instance addresses a channel is open to now, sorted."""
        return self._routing.addresses()

    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                    _registered_method: bool = False) -> Any:
        return _UnaryUnary(self._routing, method, "unary_unary", request_serializer, response_deserializer,
                           _registered_method)

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool = False) -> Any:
        return _UnaryStream(self._routing, method, "unary_stream", request_serializer, response_deserializer,
                            _registered_method)

    def stream_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool = False) -> Any:
        return _StreamUnary(self._routing, method, "stream_unary", request_serializer, response_deserializer,
                            _registered_method)

    def stream_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                      _registered_method: bool = False) -> Any:
        return _StreamStream(self._routing, method, "stream_stream", request_serializer, response_deserializer,
                             _registered_method)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        raise NotImplementedError("an AsyncDiscoveryChannel spans instances: it has no one connectivity state")

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        raise NotImplementedError("an AsyncDiscoveryChannel spans instances: it has no one connectivity state")

    async def channel_ready(self) -> None:
        raise NotImplementedError("an AsyncDiscoveryChannel spans instances: it has no one connectivity state")

    async def close(self, grace: Optional[float] = None) -> None:
        """Close every instance's channel (``grace``: seconds for calls in flight). Idempotent."""
        closing = [channel.close(grace) for channel in self._routing.pool.close()]
        await asyncio.gather(*closing, *self._routing.closing)

    async def __aenter__(self) -> AsyncDiscoveryChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncDiscoveryChannel {self._routing.describe()} open={self.addresses()}>"


class _AioRouting(Routing[Any]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing: Set[asyncio.Future[None]] = set()

    def open_channel(self, endpoint: Endpoint) -> Any:
        if endpoint.tls:
            return grpc.aio.secure_channel(endpoint.address, self.credentials or grpc.ssl_channel_credentials(),
                                           options=self.options, compression=self.compression)
        return grpc.aio.insecure_channel(endpoint.address, options=self.options, compression=self.compression)

    async def start(self, tried: List[Instance]) -> Attempt:
        """Pick an instance off the loop (avoiding ``tried``) and hold its channel for one attempt."""
        pick = self.pick(tried)
        try:
            inst = await pick.__aenter__()
        except NoInstanceAvailableError as exc:
            raise NoInstanceError(exc) from exc
        return self._hold(pick, inst, tried)

    def start_now(self, tried: List[Instance]) -> Attempt:
        """:meth:`start` with a synchronous pick (for the calls that must be made synchronously)."""
        pick = self.pick(tried)
        try:
            inst = pick.__enter__()
        except NoInstanceAvailableError as exc:
            raise NoInstanceError(exc) from exc
        return self._hold(pick, inst, tried)

    def _hold(self, pick: Pick, inst: Instance, tried: List[Instance]) -> Attempt:
        try:
            entry, stale = self.pool.acquire(inst)
        except BaseException as exc:
            pick.__exit__(type(exc), exc, exc.__traceback__)
            raise
        for channel in stale:
            self._close_later(channel)
        tried.append(inst)
        return pick, entry

    def end(self, attempt: Attempt, error: Optional[BaseException]) -> None:
        channel = self.finish(*attempt, error)
        if channel is not None:
            self._close_later(channel)

    async def abandon(self, attempt: Attempt) -> None:
        """An attempt given up by the caller (cancelled, or its stream left unread): reported to nobody."""
        pick, entry = attempt
        try:
            await pick.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None)
        finally:
            channel = self.pool.release(entry)
            if channel is not None:
                self._close_later(channel)

    def _close_later(self, channel: Any) -> None:
        self.background(channel.close())

    def background(self, work: Awaitable[None]) -> None:
        """Run ``work`` on the loop; :meth:`AsyncDiscoveryChannel.close` waits for it."""
        task = asyncio.ensure_future(work)
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)


class _MultiCallable:
    def __init__(self, routing: _AioRouting, method: str, kind: str, serializer: Any, deserializer: Any,
                 registered: bool) -> None:
        self._routing = routing
        self._method = method
        self._kind = kind
        self._serializer = serializer
        self._deserializer = deserializer
        self._registered = registered
        self._name = method.lstrip("/")

    def _make(self, channel: Any) -> Any:
        return getattr(channel, self._kind)(self._method, request_serializer=self._serializer,
                                            response_deserializer=self._deserializer,
                                            _registered_method=self._registered)

    def __repr__(self) -> str:
        return f"<aio {self._kind} {self._method} of {self._routing.describe()}>"


class _Awaitable:
    """An awaitable of a call's response, its coroutine made only when awaited."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make

    def __await__(self) -> Any:
        return self._make().__await__()


class _UnaryUnary(_MultiCallable, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[misc]
    def __call__(self, request: Any, *, timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return _Awaitable(lambda: self._invoke(request, timeout, kw))

    async def _invoke(self, request: Any, timeout: Optional[float], kw: Any) -> Any:
        routing = self._routing
        deadline = None if timeout is None else time.monotonic() + timeout
        tried: List[Instance] = []
        metadata = kw.pop("metadata")
        with routing.call(self._method) as span:
            while True:
                attempt = await routing.start(tried)
                traced = span.attempt(self._name, tried[-1])
                try:
                    with traced, graded(traced):
                        response = await attempt[1].callable(self, self._make)(
                            request, timeout=time_left(deadline), metadata=traced.metadata(metadata), **kw)
                except grpc.RpcError as exc:
                    routing.end(attempt, exc)
                    if not routing.policy.retry(exc, len(tried), self._method, deadline):
                        raise
                    continue
                except asyncio.CancelledError:
                    await routing.abandon(attempt)
                    raise
                except BaseException as exc:
                    routing.end(attempt, exc)
                    raise
                routing.end(attempt, None)
                return response


class _UnaryStream(_MultiCallable, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[misc]
    def __call__(self, request: Any, *, timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return _ResponseStream(self, request, timeout, kw)


class _ResponseStream:
    """The responses of a unary-stream call; sent to another instance while nothing has arrived yet."""

    def __init__(self, owner: _UnaryStream, request: Any, timeout: Optional[float], kw: Any) -> None:
        self._owner = owner
        self._request = request
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._kw = kw
        self._responses: Optional[AsyncIterator[Any]] = None

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._responses is None:
            self._responses = self._stream()
        return self._responses

    async def read(self) -> Any:
        """The next response, or ``grpc.aio.EOF`` after the last."""
        try:
            return await self.__aiter__().__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF

    async def _stream(self) -> AsyncIterator[Any]:
        owner, routing = self._owner, self._owner._routing
        tried: List[Instance] = []
        received = False
        kw = dict(self._kw)
        metadata = kw.pop("metadata")
        with routing.call(owner._method) as span:
            while True:
                attempt = await routing.start(tried)
                traced = span.attempt(owner._name, tried[-1], current=False)
                call: Any = None
                error: Optional[BaseException] = None
                try:
                    call = attempt[1].callable(owner, owner._make)(
                        self._request, timeout=time_left(self._deadline), metadata=traced.metadata(metadata), **kw)
                    async for message in call:
                        received = True
                        yield message
                except grpc.RpcError as exc:
                    error = exc
                except (asyncio.CancelledError, GeneratorExit) as exc:  # the caller was cancelled, or stopped reading
                    if call is not None:
                        call.cancel()
                    traced.end(exc)
                    await routing.abandon(attempt)
                    raise
                except BaseException as exc:
                    if call is not None:
                        call.cancel()
                    traced.end(exc)
                    routing.end(attempt, exc)
                    raise
                traced.grpc_code(error)
                traced.end()
                routing.end(attempt, error)
                if error is None:
                    return
                if received or not routing.policy.retry(error, len(tried), owner._method, self._deadline):
                    raise error


class _StreamUnary(_MultiCallable, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[misc]
    def __call__(self, request_iterator: Any = None, *, timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return _Awaitable(lambda: self._once(request_iterator, timeout, kw))

    async def _once(self, request_iterator: Any, timeout: Optional[float], kw: Any) -> Any:
        routing = self._routing
        tried: List[Instance] = []
        with routing.call(self._method) as span:
            attempt = await routing.start(tried)
            try:
                with span.attempt(self._name, tried[0]) as traced, graded(traced):
                    kw["metadata"] = traced.metadata(kw["metadata"])
                    response = await attempt[1].callable(self, self._make)(request_iterator, timeout=timeout, **kw)
            except asyncio.CancelledError:
                await routing.abandon(attempt)
                raise
            except BaseException as exc:
                routing.end(attempt, exc)
                raise
            routing.end(attempt, None)
            return response


class _StreamStream(_MultiCallable, grpc.aio.StreamStreamMultiCallable):  # type: ignore[misc]
    def __call__(self, request_iterator: Any = None, *, timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        routing = self._routing
        span = routing.call(self._method)
        tried: List[Instance] = []
        try:
            attempt = routing.start_now(tried)
        except BaseException as exc:
            span.end(exc)
            raise
        traced = span.attempt(self._name, tried[0], current=False)
        try:
            call = attempt[1].callable(self, self._make)(
                request_iterator, timeout=timeout,
                **call_kwargs(traced.metadata(metadata), credentials, wait_for_ready, compression))
        except BaseException as exc:
            routing.end(attempt, exc)
            traced.end(exc)
            span.end(exc)
            raise

        def ended(done: Any) -> None:
            failed = None if done.cancelled() or done.code() is grpc.StatusCode.OK else done
            for one in (traced, span):
                one.grpc_code(failed)
                one.end()
            if done.cancelled():
                routing.background(routing.abandon(attempt))
            else:
                routing.end(attempt, failed)

        call.add_done_callback(ended)
        return call
