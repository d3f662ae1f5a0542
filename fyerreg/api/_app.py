"""The WSGI app behind ``Server``: ``POST /<Service>/<Method>`` with JSON in and out."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .. import tracing
from . import _codec

logger = logging.getLogger("fyerreg.api.server")

StartResponse = Callable[..., Any]

DEFAULT_MAX_BODY = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _Method:
    name: str
    func: Callable[..., Any]
    takes_request: bool
    request_type: Optional[type]


class _HttpError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}


class ServiceApp:
    """A WSGI app exposing the public methods of registered objects as ``Obj.Method``.

    Success answers 200 with the JSON result. Errors answer a JSON object
    ``{"type": ..., "message": ...}``: 400 for a body that is not JSON or does not fit
    the method's request type, 404 for an unknown method, 405 for another verb than
    POST, 413 for a body over ``max_body`` bytes, 500 when the method raised (``type``
    is the exception's class name).
    """

    def __init__(self, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._methods: Dict[Tuple[str, str], _Method] = {}
        self._max_body = max_body
        self._in_flight = 0
        self._idle = threading.Condition()

    def add(self, obj: object, name: Optional[str] = None) -> List[str]:
        """Expose ``obj``'s public methods under ``name`` (default: its class name)."""
        service = name or type(obj).__name__
        if not service or "/" in service:
            raise ValueError(f"service name {service!r} must be non-empty and contain no '/'")
        found: Dict[Tuple[str, str], _Method] = {}
        for attr in dir(obj):
            if attr.startswith("_"):
                continue
            func = getattr(obj, attr)
            if not callable(func) or isinstance(func, type):
                continue
            found[(service, attr)] = _describe(service, attr, func)
        if not found:
            raise ValueError(f"{service} has no public methods to expose")
        clash = sorted(f"{s}.{m}" for s, m in found if (s, m) in self._methods)
        if clash:
            raise ValueError(f"already registered: {', '.join(clash)}")
        self._methods.update(found)
        return sorted(f"{s}.{m}" for s, m in found)

    @property
    def methods(self) -> List[str]:
        """Every exposed ``Service.Method``, sorted."""
        return sorted(f"{s}.{m}" for s, m in self._methods)

    @property
    def in_flight(self) -> int:
        """How many calls are being handled right now."""
        return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until no call is in flight or ``timeout`` seconds passed; True when idle."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._idle:
            self._in_flight += 1
        try:
            status, body, extra = self._handle(environ)
        finally:
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(), headers)
        return [body]

    def _handle(self, environ: Dict[str, Any]) -> Tuple[int, bytes, List[Tuple[str, str]]]:
        try:
            method = self._route(environ)
        except _HttpError as err:
            extra = [("Allow", "POST")] if err.status == 405 else []
            return err.status, _error_body(err.kind, err.message), extra
        with tracing.server_span(environ, "fyerreg", method.name) as span:
            status, kind, body = self._serve(environ, method)
            span.answered(status, kind)
        return status, body, []

    def _serve(self, environ: Dict[str, Any], method: _Method) -> Tuple[int, str, bytes]:
        """Read the request, run the method: the status, the error's type ("" on success), the body."""
        try:
            request = self._read_request(environ, method)
        except _HttpError as err:
            return err.status, err.kind, _error_body(err.kind, err.message)
        try:
            result = method.func(request) if method.takes_request else method.func()
        except Exception as exc:
            logger.error("%s raised %s", environ.get("PATH_INFO", ""), type(exc).__name__, exc_info=True)
            return 500, type(exc).__name__, _error_body(type(exc).__name__, str(exc))
        try:
            return 200, "", _codec.encode(result)
        except (TypeError, ValueError) as exc:
            logger.error("%s returned a value that is not JSON: %s", environ.get("PATH_INFO", ""), exc)
            return 500, "UnserializableResponse", _error_body("UnserializableResponse", str(exc))

    def _route(self, environ: Dict[str, Any]) -> _Method:
        path = environ.get("PATH_INFO", "")
        parts = path.strip("/").split("/")
        method = self._methods.get((parts[0], parts[1])) if len(parts) == 2 else None
        if method is None:
            raise _HttpError(404, "MethodNotFound", f"no method at {path!r}; call POST /<Service>/<Method>")
        if environ.get("REQUEST_METHOD") != "POST":
            raise _HttpError(405, "MethodNotAllowed", f"use POST, not {environ.get('REQUEST_METHOD')}")
        return method

    def _read_request(self, environ: Dict[str, Any], method: _Method) -> Any:
        raw_length = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            raise _HttpError(400, "BadRequest", f"bad Content-Length {raw_length!r}") from None
        if length < 0:
            raise _HttpError(400, "BadRequest", f"bad Content-Length {raw_length!r}")
        if length > self._max_body:
            raise _HttpError(413, "PayloadTooLarge", f"body of {length} bytes; at most {self._max_body} allowed")
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            data = _codec.decode(body)
        except ValueError as exc:
            raise _HttpError(400, "BadRequest", f"body is not JSON: {exc}") from None
        if not method.takes_request:
            if data not in (None, {}):
                raise _HttpError(400, "BadRequest", "this method takes no request")
            return None
        try:
            return _codec.from_jsonable(data, method.request_type)
        except ValueError as exc:
            raise _HttpError(400, "BadRequest", str(exc)) from None


def _describe(service: str, attr: str, func: Callable[..., Any]) -> _Method:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return _Method(f"{service}/{attr}", func, True, None)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(required) > 1 or (required and required[0] not in positional):
        raise ValueError(f"{service}.{attr} must take at most one positional request argument")
    if not positional and not any(p.kind == p.VAR_POSITIONAL for p in params):
        return _Method(f"{service}/{attr}", func, False, None)
    request_type: Optional[type] = None
    if positional:
        try:
            hint = typing.get_type_hints(func).get(positional[0].name)
        except Exception:  # unresolvable annotations: pass the JSON through
            hint = None
        request_type = hint if isinstance(hint, type) else None
    return _Method(f"{service}/{attr}", func, True, request_type)


def _error_body(kind: str, message: str) -> bytes:
    return _codec.encode({"type": kind, "message": message})
