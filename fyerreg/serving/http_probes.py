"""``/healthz`` and ``/readyz`` for WSGI and ASGI apps: middlewares answering only those two paths.

::

    app = WSGIProbes(wsgi_app, Probes(registration))           # any WSGI app
    app = ASGIProbes(asgi_app, asgi_registration.probes)       # any ASGI 3 app

``GET`` (or ``HEAD``) on ``healthz_path``/``readyz_path`` is answered from the probe source
(:class:`fyerreg.serving.probes.Probes`, or a gunicorn worker's view of its master's
registration); every other request goes to the app untouched. The integrations wrap their
app in these when their ``probes`` option (``PROBES`` setting) is on; it is off by
default, for apps that answer those paths themselves.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

from .probes import DEFAULT_HEALTHZ_PATH, DEFAULT_READYZ_PATH, ProbeAnswer, ProbeSource, check_path

__all__ = ["WSGIProbes", "ASGIProbes"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_REASONS = {200: "200 OK", 503: "503 Service Unavailable"}


class _Paths:
    def __init__(self, probes: ProbeSource, healthz_path: str, readyz_path: str) -> None:
        if not (callable(getattr(probes, "healthz", None)) and callable(getattr(probes, "readyz", None))):
            raise TypeError(f"probes must have healthz() and readyz(), got {type(probes).__name__}")
        self.probes = probes
        self.healthz_path = check_path("healthz_path", healthz_path)
        self.readyz_path = check_path("readyz_path", readyz_path)
        if self.healthz_path == self.readyz_path:
            raise ValueError(f"healthz_path and readyz_path must differ, both are {healthz_path!r}")

    def answer(self, method: str, path: str) -> Optional[ProbeAnswer]:
        if method not in ("GET", "HEAD"):
            return None
        if path == self.healthz_path:
            return self.probes.healthz()
        if path == self.readyz_path:
            return self.probes.readyz()
        return None


def _headers(body: bytes) -> List[Tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store")]


class WSGIProbes(_Paths):
    """WSGI middleware answering ``GET healthz_path`` and ``GET readyz_path`` from ``probes``."""

    def __init__(self, app: WSGIApp, probes: ProbeSource, *, healthz_path: str = DEFAULT_HEALTHZ_PATH,
                 readyz_path: str = DEFAULT_READYZ_PATH) -> None:
        super().__init__(probes, healthz_path, readyz_path)
        self.app = app

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("PATH_INFO", "")))
        if answer is None:
            return self.app(environ, start_response)
        body = answer.encode()
        start_response(_REASONS.get(answer.status, str(answer.status)), _headers(body))
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class ASGIProbes(_Paths):
    """ASGI 3 middleware answering ``GET healthz_path`` and ``GET readyz_path`` from ``probes``.

    Starlette: ``app.add_middleware(ASGIProbes, probes=registration.probes)``. Answering
    reads only this process's state: nothing blocks the event loop.
    """

    def __init__(self, app: ASGIApp, probes: ProbeSource, *, healthz_path: str = DEFAULT_HEALTHZ_PATH,
                 readyz_path: str = DEFAULT_READYZ_PATH) -> None:
        super().__init__(probes, healthz_path, readyz_path)
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        answer = None
        if scope.get("type") == "http":
            answer = self.answer(str(scope.get("method", "GET")), str(scope.get("path", "")))
        if answer is None:
            await self.app(scope, receive, send)
            return
        body = answer.encode()
        headers = [(k.lower().encode(), v.encode()) for k, v in _headers(body)]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
