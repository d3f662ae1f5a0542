"""``DiscoveryChannel``: a ``grpc.Channel`` whose calls go to instances picked through discovery."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple

import grpc

from ... import tracing
from ...errors import NoInstanceAvailableError
from ...naming import Endpoint, Instance
from ._base import Routing, call_kwargs, graded
from ._pool import Entry
from ._status import INSTANCE_FAILURES, NoInstanceError, time_left

if TYPE_CHECKING:
    from ...discovery import Discovery
    from ...discovery._pick import Pick

__all__ = ["DiscoveryChannel"]

Attempt = Tuple["Pick", Entry[grpc.Channel]]
Metadata = Callable[[Any], Any]


class DiscoveryChannel(grpc.Channel):  # type: ignore[misc]
    """A ``grpc.Channel`` for ``service`` (``version``; None: any) that sends each call to an
    instance picked through ``discovery``: pass it to a generated stub, ``GreeterStub(channel)``.

    Instances are picked by their ``grpc`` endpoint (their address when they name no
    endpoints), one ``grpc.Channel`` each, opened when first picked and closed once the
    instance has left discovery's candidates and its calls have ended. Every call's
    latency and outcome reach the balancer and outlier ejection; the status codes in
    ``failure_codes`` count against the instance, the others are the application's
    answers. Unary-unary and unary-stream calls fail over by the
    :class:`~fyerreg.retry.Failover` of ``retries`` and ``idempotent_methods`` (full
    names, ``"/package.Service/Method"``): an UNAVAILABLE call that was never sent goes to
    another instance, and any UNAVAILABLE of an idempotent method; a stream only until
    its first response arrived; futures and streaming-request calls go to one instance
    without failover. ``timeout`` bounds a call with its retries (a call made with
    ``wait_for_ready=True`` waits for its instance instead of failing over). With no instance to
    pick, a call raises :class:`NoInstanceError` (a ``grpc.RpcError`` with UNAVAILABLE).

    ``options`` and ``compression`` go to every channel; TLS endpoints get
    ``credentials`` (default ``grpc.ssl_channel_credentials()``). Close it (or use it as a
    context manager) to close every channel; the discovery stays open.
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
        self._routing: _SyncRouting = _SyncRouting(
            discovery, service, version, retries=retries, idempotent_methods=idempotent_methods,
            failure_codes=failure_codes, options=options, credentials=credentials, compression=compression)

    @property
    def routing(self) -> Routing[grpc.Channel]:
        """The service, version, failover policy and open channels behind this channel."""
        return self._routing

    def addresses(self) -> List[str]:
        """The instance addresses a channel is open to now, sorted."""
        return self._routing.addresses()

    def unary_unary(self, method: str, request_serializer: Optional[Callable[[Any], bytes]] = None,
                    response_deserializer: Optional[Callable[[bytes], Any]] = None,
                    _registered_method: bool = False) -> grpc.UnaryUnaryMultiCallable:
        return _UnaryUnary(self._routing, method, "unary_unary", request_serializer, response_deserializer,
                           _registered_method)

    def unary_stream(self, method: str, request_serializer: Optional[Callable[[Any], bytes]] = None,
                     response_deserializer: Optional[Callable[[bytes], Any]] = None,
                     _registered_method: bool = False) -> grpc.UnaryStreamMultiCallable:
        return _UnaryStream(self._routing, method, "unary_stream", request_serializer, response_deserializer,
                            _registered_method)

    def stream_unary(self, method: str, request_serializer: Optional[Callable[[Any], bytes]] = None,
                     response_deserializer: Optional[Callable[[bytes], Any]] = None,
                     _registered_method: bool = False) -> grpc.StreamUnaryMultiCallable:
        return _StreamUnary(self._routing, method, "stream_unary", request_serializer, response_deserializer,
                            _registered_method)

    def stream_stream(self, method: str, request_serializer: Optional[Callable[[Any], bytes]] = None,
                      response_deserializer: Optional[Callable[[bytes], Any]] = None,
                      _registered_method: bool = False) -> grpc.StreamStreamMultiCallable:
        return _StreamStream(self._routing, method, "stream_stream", request_serializer, response_deserializer,
                             _registered_method)

    def subscribe(self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False) -> None:
        raise NotImplementedError("a DiscoveryChannel spans instances: it has no one connectivity state")

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        raise NotImplementedError("a DiscoveryChannel spans instances: it has no one connectivity state")

    def close(self) -> None:
        """Close every instance's channel (calls still in flight are cancelled). Idempotent."""
        for channel in self._routing.pool.close():
            channel.close()

    def __enter__(self) -> DiscoveryChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DiscoveryChannel {self._routing.describe()} open={self.addresses()}>"


class _SyncRouting(Routing[grpc.Channel]):
    def open_channel(self, endpoint: Endpoint) -> grpc.Channel:
        if endpoint.tls:
            return grpc.secure_channel(endpoint.address, self.credentials or grpc.ssl_channel_credentials(),
                                       options=self.options, compression=self.compression)
        return grpc.insecure_channel(endpoint.address, options=self.options, compression=self.compression)

    def start(self, tried: List[Instance]) -> Attempt:
        """Pick an instance (avoiding ``tried``) and hold its channel for one attempt."""
        pick = self.pick(tried)
        try:
            inst = pick.__enter__()
        except NoInstanceAvailableError as exc:
            raise NoInstanceError(exc) from exc
        try:
            entry, stale = self.pool.acquire(inst)
        except BaseException as exc:
            pick.__exit__(type(exc), exc, exc.__traceback__)
            raise
        for channel in stale:
            channel.close()
        tried.append(inst)
        return pick, entry

    def end(self, attempt: Attempt, error: Optional[BaseException], *, in_callback: bool = False) -> None:
        channel = self.finish(*attempt, error)
        if in_callback:  # closing a channel from one of its own callbacks is not safe
            self.pool.defer(channel)
        elif channel is not None:
            channel.close()

    def succeeded(self, pick: Pick, entry: Entry[grpc.Channel]) -> None:
        """:meth:`end` of an attempt that worked: the common case, kept short."""
        try:
            pick.__exit__(None, None, None)
        finally:
            channel = self.pool.release(entry)
        if channel is not None:
            channel.close()

    def watch(self, attempt: Attempt, call: Any, traced: tracing.Attempt, span: Optional[tracing.Call] = None
              ) -> None:
        """Report ``attempt`` when ``call`` (a future or a response stream) ends, and end its ``traced``
        span (and the call's ``span``, when given)."""
        def ended() -> None:
            failed = call.code() is not grpc.StatusCode.OK
            traced.grpc_code(call if failed else None)
            traced.end()
            if span is not None:
                span.grpc_code(call if failed else None)
                span.end()
            self.end(attempt, call if failed else None, in_callback=True)

        if not call.add_callback(ended):
            ended()


class _MultiCallable:
    def __init__(self, routing: _SyncRouting, method: str, kind: str, serializer: Any, deserializer: Any,
                 registered: bool) -> None:
        self._routing = routing
        self._method = method
        self._kind = kind
        self._serializer = serializer
        self._deserializer = deserializer
        self._registered = registered
        self._name = method.lstrip("/")

    def _make(self, channel: grpc.Channel) -> Any:
        return getattr(channel, self._kind)(self._method, request_serializer=self._serializer,
                                            response_deserializer=self._deserializer,
                                            _registered_method=self._registered)

    def _once(self, invoke: Callable[[Any], Any], kw: Dict[str, Any]) -> Any:
        """``invoke(multicallable)`` on one picked instance; reported when the call it returns ends.
        ``kw``: the call's arguments ``invoke`` passes, given the trace context in their metadata."""
        routing = self._routing
        span = routing.call(self._method)
        tried: List[Instance] = []
        try:
            attempt = routing.start(tried)
        except BaseException as exc:
            span.end(exc)
            raise
        traced = span.attempt(self._name, tried[0], current=False)
        kw["metadata"] = traced.metadata(kw["metadata"])
        try:
            call = invoke(attempt[1].callable(self, self._make))
        except BaseException as exc:
            routing.end(attempt, exc)
            traced.end(exc)
            span.end(exc)
            raise
        routing.watch(attempt, call, traced, span)
        return call

    def __repr__(self) -> str:
        return f"<{self._kind} {self._method} of {self._routing.describe()}>"


class _UnaryUnary(_MultiCallable, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    def __call__(self, request: Any, timeout: Optional[float] = None, metadata: Any = None, credentials: Any = None,
                 wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        return self._unary(False, request, timeout, metadata, credentials, wait_for_ready, compression)

    def with_call(self, request: Any, timeout: Optional[float] = None, metadata: Any = None, credentials: Any = None,
                  wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        return self._unary(True, request, timeout, metadata, credentials, wait_for_ready, compression)

    def _unary(self, with_call: bool, request: Any, timeout: Optional[float], metadata: Any, credentials: Any,
               wait_for_ready: Optional[bool], compression: Any) -> Any:
        """Call on picked instances, failing over as the policy allows (written out: every unary call of
        every stub runs it)."""
        routing = self._routing
        deadline = None if timeout is None else time.monotonic() + timeout
        left = timeout
        tried: List[Instance] = []
        with routing.call(self._method) as span:
            while True:
                pick, entry = routing.start(tried)
                target = entry.callables.get(self) or entry.callable(self, self._make)
                attempt = span.attempt(self._name, tried[-1])
                try:
                    with attempt:
                        try:
                            result = (target.with_call if with_call else target)(
                                request, timeout=left, metadata=attempt.metadata(metadata), credentials=credentials,
                                wait_for_ready=wait_for_ready, compression=compression)
                        except grpc.RpcError as exc:
                            attempt.grpc_code(exc)
                            raise
                        attempt.grpc_code(None)
                except grpc.RpcError as exc:
                    routing.end((pick, entry), exc)
                    if not routing.policy.retry(exc, len(tried), self._method, deadline):
                        raise
                    left = time_left(deadline)
                    continue
                except BaseException as exc:
                    routing.end((pick, entry), exc)
                    raise
                routing.succeeded(pick, entry)
                return result

    def future(self, request: Any, timeout: Optional[float] = None, metadata: Any = None, credentials: Any = None,
               wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return self._once(lambda call: call.future(request, timeout=timeout, **kw), kw)


class _UnaryStream(_MultiCallable, grpc.UnaryStreamMultiCallable):  # type: ignore[misc]
    def __call__(self, request: Any, timeout: Optional[float] = None, metadata: Any = None, credentials: Any = None,
                 wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(None, credentials, wait_for_ready, compression)
        del kw["metadata"]
        return _ResponseStream(self, lambda call, left, traced: call(request, timeout=left, metadata=traced(metadata),
                                                                    **kw), timeout)


class _StreamUnary(_MultiCallable, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    def __call__(self, request_iterator: Iterator[Any], timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return self._one_shot(lambda call: call(request_iterator, timeout=timeout, **kw), kw)

    def with_call(self, request_iterator: Iterator[Any], timeout: Optional[float] = None, metadata: Any = None,
                  credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return self._one_shot(lambda call: call.with_call(request_iterator, timeout=timeout, **kw), kw)

    def future(self, request_iterator: Iterator[Any], timeout: Optional[float] = None, metadata: Any = None,
               credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return self._once(lambda call: call.future(request_iterator, timeout=timeout, **kw), kw)

    def _one_shot(self, invoke: Callable[[Any], Any], kw: Dict[str, Any]) -> Any:
        """``invoke(multicallable)`` once: a request stream can be read only once, so no failover."""
        routing = self._routing
        tried: List[Instance] = []
        with routing.call(self._method) as span:
            attempt = routing.start(tried)
            try:
                with span.attempt(self._name, tried[0]) as traced, graded(traced):
                    kw["metadata"] = traced.metadata(kw["metadata"])
                    result = invoke(attempt[1].callable(self, self._make))
            except BaseException as exc:
                routing.end(attempt, exc)
                raise
            routing.end(attempt, None)
            return result


class _StreamStream(_MultiCallable, grpc.StreamStreamMultiCallable):  # type: ignore[misc]
    def __call__(self, request_iterator: Iterator[Any], timeout: Optional[float] = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: Optional[bool] = None, compression: Any = None) -> Any:
        kw = call_kwargs(metadata, credentials, wait_for_ready, compression)
        return self._once(lambda call: call(request_iterator, timeout=timeout, **kw), kw)


class _ResponseStream(grpc.Call):  # type: ignore[misc]
    """The responses of a unary-stream call; sent to another instance while nothing has arrived yet."""

    def __init__(self, owner: _MultiCallable, invoke: Callable[[Any, Optional[float], Metadata], Any],
                 timeout: Optional[float]) -> None:
        self._owner = owner
        self._invoke = invoke
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._tried: List[Instance] = []
        self._received = False
        self._cancelled = False
        self._lock = threading.Lock()
        self._span = owner._routing.call(owner._method)
        try:
            self._call: Any = self._start()
        except BaseException as exc:
            self._span.end(exc)
            raise

    def _start(self) -> Any:
        routing = self._owner._routing
        attempt = routing.start(self._tried)
        traced = self._span.attempt(self._owner._name, self._tried[-1], current=False)
        try:
            call = self._invoke(attempt[1].callable(self._owner, self._owner._make), time_left(self._deadline),
                                traced.metadata)
        except BaseException as exc:
            routing.end(attempt, exc)
            traced.end(exc)
            raise
        routing.watch(attempt, call, traced)
        return call

    def __iter__(self) -> _ResponseStream:
        return self

    def __next__(self) -> Any:
        while True:
            call = self._call
            try:
                message = next(call)
            except StopIteration:
                self._span.end()
                raise
            except grpc.RpcError as exc:
                if self._received or self._cancelled or not self._owner._routing.policy.retry(
                        exc, len(self._tried), self._owner._method, self._deadline):
                    self._span.end(exc)
                    raise
                with self._lock:
                    if self._cancelled:
                        self._span.end(exc)
                        raise
                    try:
                        self._call = self._start()
                    except BaseException as again:
                        self._span.end(again)
                        raise
                continue
            self._received = True
            return message

    def cancel(self) -> bool:
        with self._lock:
            self._cancelled = True
            self._span.end()
            return bool(self._call.cancel())

    def is_active(self) -> bool:
        return bool(self._call.is_active())

    def time_remaining(self) -> Optional[float]:
        return time_left(self._deadline)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return bool(self._call.add_callback(callback))

    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()

    def code(self) -> grpc.StatusCode:
        return self._call.code()

    def details(self) -> str:
        return str(self._call.details())
