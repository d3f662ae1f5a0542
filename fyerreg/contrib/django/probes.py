"""The Django middleware answering ``/healthz`` and ``/readyz`` (settings ``FYERREG["PROBES"]``).

``FyerRegConfig.ready()`` puts it first in ``MIDDLEWARE`` when ``PROBES`` is on; it answers
before any other middleware (and before ``ALLOWED_HOSTS`` is checked: kubelet dials the
pod's IP), and passes every other request on.
"""

from __future__ import annotations

from typing import Any, Callable

from django.http import HttpRequest, HttpResponse

from .apps import state

__all__ = ["ProbesMiddleware"]


class ProbesMiddleware:
    """Answers ``GET``/``HEAD`` on the site's ``HEALTHZ_PATH`` and ``READYZ_PATH`` from its registration."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.method in ("GET", "HEAD"):
            integration = state()
            settings = integration.settings
            if request.path_info in (settings.healthz_path, settings.readyz_path):
                probes = integration.probes
                answer = probes.healthz() if request.path_info == settings.healthz_path else probes.readyz()
                response = HttpResponse(b"" if request.method == "HEAD" else answer.encode(), status=answer.status,
                                        content_type="application/json")
                response["Cache-Control"] = "no-store"
                return response
        return self.get_response(request)
