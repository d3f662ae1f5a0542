"""Traces of fyerreg's calls through OpenTelemetry, when the application uses it (the ``otel`` extra).

Each logical call of ``api.Client``, the requests and httpx adapters and the gRPC
channels is one span, ``fyerreg <service> call`` (kind INTERNAL), with one child span
per attempt (kind CLIENT) named and described by OpenTelemetry's semantic conventions
(semconv 1.26: RPC spans, ``{rpc.service}/{rpc.method}`` with ``rpc.system``,
``rpc.service``, ``rpc.method``; HTTP client spans, ``{http.request.method}`` with
``http.request.method``, ``url.full``, ``http.response.status_code``,
``http.request.resend_count``; both with ``server.address``, ``server.port`` and
``error.type``), plus the instance it went to: ``fyerreg.service``,
``fyerreg.version``, ``fyerreg.instance.id``, ``fyerreg.instance.address`` and
``fyerreg.attempt`` (1 for the first). The attempt carries the trace to the instance
through the globally configured propagator (W3C ``traceparent`` by default), and
``api.Server`` continues it in a SERVER span.

Nothing here imports OpenTelemetry: tracing starts once the application has imported
``opentelemetry.trace`` (as configuring a tracer provider does). Until then every
call site gets a shared no-op, and a process without the extra never imports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, MutableMapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from .naming import Instance

__all__ = ["Attempt", "Call", "current_ids", "http_call", "rpc_call", "server_span"]

Attribute = Union[str, int, float, bool]

_TRACE_MODULE = "opentelemetry.trace"


class _Api:
    """The parts of the OpenTelemetry API used here, imported once tracing is on."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        self.context = context
        self.propagate = propagate
        self.trace = trace
        self.tracer: Tracer = trace.get_tracer("fyerreg")
        self.client = trace.SpanKind.CLIENT
        self.internal = trace.SpanKind.INTERNAL
        self.server = trace.SpanKind.SERVER


_api: Optional[_Api] = None


def _loaded() -> Optional[_Api]:
    """The API once the application imported OpenTelemetry's, else None (a dict lookup)."""
    global _api
    if _api is None:
        if _TRACE_MODULE not in sys.modules:
            return None
        _api = _Api()
    return _api


class Attempt:
    """One attempt of a call on one instance: a CLIENT span. The no-op form is shared by every call."""

    __slots__ = ()

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        return None

    def inject(self, carrier: MutableMapping[str, str]) -> None:
        """Write the trace context (``traceparent``, ...) into the headers ``carrier``."""

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers``, or a copy of them with the trace context added."""
        return headers

    def metadata(self, metadata: Optional[Sequence[Tuple[str, Any]]]) -> Optional[Sequence[Tuple[str, Any]]]:
        """gRPC call metadata with the trace context appended."""
        return metadata

    def answered(self, status: int) -> None:
        """The HTTP status of the answer (>= 400 marks the span failed)."""

    def grpc_code(self, call: Any) -> None:
        """How the attempt ended: a ``grpc.RpcError`` or finished call (its code not OK marks the
        span failed), None for OK."""

    def fail(self, exc: BaseException) -> None:
        """The attempt failed with ``exc``."""

    def end(self, exc: Optional[BaseException] = None) -> None:
        """End the span (failed with ``exc`` when given); for attempts that end in a callback."""


class Call:
    """One logical call: the parent of its attempts. The no-op form is shared by every call."""

    __slots__ = ()

    def __enter__(self) -> Call:
        return self

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        return None

    def attempt(self, name: str, inst: Instance, current: bool = True) -> Attempt:
        """Start the span of the next attempt, on ``inst``. ``current``: make it the active span
        between ``__enter__`` and ``__exit__`` (not for attempts that end on another thread)."""
        return _NO_ATTEMPT

    def answered(self, status: int) -> None:
        """The HTTP status the call returned."""

    def grpc_code(self, call: Any) -> None:
        """How the call ended, as :meth:`Attempt.grpc_code`."""

    def fail(self, exc: BaseException) -> None:
        """The call failed with ``exc``."""

    def end(self, exc: Optional[BaseException] = None) -> None:
        """End the span (failed with ``exc`` when given)."""


_NO_ATTEMPT = Attempt()
_NO_CALL = Call()


def _error_type(exc: BaseException) -> str:
    """A gRPC error's status code name, else the exception's class name."""
    code = getattr(exc, "code", None)
    try:
        name = getattr(code(), "name", None) if callable(code) else None
    except Exception:  # a ``code`` of some other meaning
        name = None
    return name if isinstance(name, str) else type(exc).__qualname__


def _server_attributes(address: str) -> Dict[str, Attribute]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return {"server.address": address}
    return {"server.address": host.strip("[]"), "server.port": int(port)}


class _Traced:
    """What a call's and an attempt's span share: how they end, failed or not."""

    __slots__ = ("_api", "_span", "_context", "_settled", "_ended")

    def __init__(self, api: _Api, span: Span) -> None:
        self._api = api
        self._span = span
        self._context: Context = api.trace.set_span_in_context(span)
        self._settled = False
        self._ended = False

    def _error(self, error_type: str, description: Optional[str] = None) -> None:
        self._settled = True
        span = self._span
        span.set_attribute("error.type", error_type)
        span.set_status(self._api.trace.Status(self._api.trace.StatusCode.ERROR, description))

    def answered(self, status: int) -> None:
        self._span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self._error(str(status))

    def grpc_code(self, call: Any) -> None:
        code = None if call is None else call.code()
        value = 0 if code is None else getattr(code, "value", (None,))[0]
        if isinstance(value, int):
            self._span.set_attribute("rpc.grpc.status_code", value)
        if value:
            name = getattr(code, "name", str(code))
            self._error(name, f"{name}: {call.details()}"[:500])

    def fail(self, exc: BaseException) -> None:
        if self._settled or isinstance(exc, GeneratorExit):  # GeneratorExit: the caller stopped reading
            return
        span = self._span
        if span.is_recording():
            span.record_exception(exc)
            self._error(_error_type(exc), f"{type(exc).__name__}: {exc}"[:500])

    def end(self, exc: Optional[BaseException] = None) -> None:
        if self._ended:
            return
        self._ended = True
        if exc is not None:
            self.fail(exc)
        self._span.end()


class _Attempt(_Traced, Attempt):
    __slots__ = ("_current", "_token")

    def __init__(self, api: _Api, span: Span, current: bool) -> None:
        super().__init__(api, span)
        self._current = current
        self._token: Any = None

    def __enter__(self) -> Attempt:
        if self._current:
            self._token = self._api.context.attach(self._context)
        return self

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._api.context.detach(token)
        self.end(exc)

    def inject(self, carrier: MutableMapping[str, str]) -> None:
        self._api.propagate.inject(carrier, context=self._context)

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        carrier = dict(headers)
        self._api.propagate.inject(carrier, context=self._context)
        return carrier

    def metadata(self, metadata: Optional[Sequence[Tuple[str, Any]]]) -> Optional[Sequence[Tuple[str, Any]]]:
        carrier: Dict[str, str] = {}
        self._api.propagate.inject(carrier, context=self._context)
        if not carrier:
            return metadata
        return (*(metadata or ()), *carrier.items())


class _Call(_Traced, Call):
    __slots__ = ("_attributes", "_attempts", "_http")

    def __init__(self, api: _Api, span: Span, attributes: Dict[str, Attribute], http: bool) -> None:
        super().__init__(api, span)
        self._attributes = attributes
        self._attempts = 0
        self._http = http

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.end(exc)

    def attempt(self, name: str, inst: Instance, current: bool = True) -> Attempt:
        self._attempts += 1
        attributes = dict(self._attributes)
        attributes.update(_server_attributes(inst.address))
        attributes["fyerreg.service"] = inst.service
        attributes["fyerreg.version"] = inst.version
        attributes["fyerreg.instance.id"] = inst.id
        attributes["fyerreg.instance.address"] = inst.address
        attributes["fyerreg.attempt"] = self._attempts
        if self._http and self._attempts > 1:
            attributes["http.request.resend_count"] = self._attempts - 1
        span = self._api.tracer.start_span(name, context=self._context, kind=self._api.client, attributes=attributes)
        return _Attempt(self._api, span, current)

    def end(self, exc: Optional[BaseException] = None) -> None:
        if not self._ended:
            self._span.set_attribute("fyerreg.attempts", self._attempts)
        super().end(exc)


def _call(service: str, version: Optional[str], attributes: Dict[str, Attribute], http: bool, api: _Api) -> Call:
    parent: Dict[str, Attribute] = {"fyerreg.service": service}
    if version is not None:
        parent["fyerreg.version"] = version
    parent.update(attributes)
    span = api.tracer.start_span(f"fyerreg {service} call", kind=api.internal, attributes=parent)
    if not span.is_recording() and not span.get_span_context().is_valid:
        return _NO_CALL  # no tracer provider set, and no trace to carry on: nothing to record or send
    return _Call(api, span, attributes, http)


def rpc_call(service: str, version: Optional[str], system: str, full_method: str) -> Call:
    """Start the span of one call of ``full_method`` (``[/]Service/Method``) to ``service``
    (``version``; None: any) over the RPC ``system`` (``grpc``, ``fyerreg``)."""
    api = _loaded()
    if api is None:
        return _NO_CALL
    return _call(service, version, rpc_attributes(system, full_method), False, api)


def http_call(service: str, version: Optional[str], method: str, url: str) -> Call:
    """Start the span of one HTTP request ``method`` ``url`` to ``service`` (``version``; None: any);
    ``url.full`` is ``url`` without credentials (its host names the service, each attempt names the instance)."""
    api = _loaded()
    if api is None:
        return _NO_CALL
    if "@" in url:
        parts = urlsplit(url)
        url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))
    return _call(service, version, {"http.request.method": method, "url.full": url}, True, api)


def rpc_attributes(system: str, full_method: str) -> Dict[str, Attribute]:
    """``rpc.system``, ``rpc.service`` and ``rpc.method`` of a method named ``[/]Service/Method``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return {"rpc.system": system, "rpc.service": service, "rpc.method": method}


class _EnvironGetter:
    """Reads propagation headers from a WSGI environ (``traceparent`` is ``HTTP_TRACEPARENT``)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> Optional[List[str]]:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> List[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_ENVIRON_GETTER = _EnvironGetter()


class _Server(_Traced):
    """The SERVER span of one request, active while the method runs."""

    __slots__ = ("_token",)

    def __enter__(self) -> _Server:
        self._token = self._api.context.attach(self._context)
        return self

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        self._api.context.detach(self._token)
        self.end(exc)

    def answered(self, status: int, error: Optional[str] = None) -> None:
        """The status answered; a 5xx (not a 4xx, the caller's fault) marks the span failed, with the error's type."""
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._error(error or str(status))


class _NoServer:
    __slots__ = ()

    def __enter__(self) -> _NoServer:
        return self

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> None:
        return None

    def answered(self, status: int, error: Optional[str] = None) -> None:
        return None


_NO_SERVER = _NoServer()


def server_span(environ: Mapping[str, Any], system: str, full_method: str) -> Union[_Server, _NoServer]:
    """The SERVER span of a request for ``full_method`` whose WSGI ``environ`` may carry the
    caller's trace context; it continues that trace."""
    api = _loaded()
    if api is None:
        return _NO_SERVER
    parent = api.propagate.extract(environ, getter=_ENVIRON_GETTER)  # type: ignore[arg-type]
    span = api.tracer.start_span(full_method.lstrip("/"), context=parent, kind=api.server,
                                 attributes=rpc_attributes(system, full_method))
    return _Server(api, span)


def current_ids() -> Optional[Tuple[str, str]]:
    """The trace id (32 hex digits) and span id (16) of the active span, or None without a valid one."""
    api = _loaded()
    if api is None:
        return None
    ctx = api.trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
