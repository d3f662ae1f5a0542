"""Flask extension: register the app while it serves, and find the services it calls.

::

    app.config.update(FYERREG_SERVICE_NAME="user-service", FYERREG_ADDRESS="0.0.0.0:5000",
                      FYERREG_ENDPOINTS=["etcd:2379"])
    fyerreg = FyerReg(app)
    ...
    inst = current_app.extensions["fyerreg"].discovery.select("billing-service")

Config keys are the fields of ``Settings`` upper-cased with the ``FYERREG_`` prefix:
``SERVICE_NAME`` (default: the app's name), ``SERVICE_VERSION``, ``ADDRESS`` (where the app
listens; default from ``FLASK_RUN_HOST``/``FLASK_RUN_PORT`` or ``127.0.0.1:5000``),
``ADVERTISE_ADDRESS``, ``INSTANCE_ID``, ``WEIGHT``, ``METADATA``, ``REGISTER`` (``"auto"``:
register unless ``TESTING``, a reloader's parent process, or a gunicorn master registers it),
``REGISTRY`` (a Registry or a factory; default an ``EtcdRegistry`` from ``ENDPOINTS``,
``NAMESPACE``, ``TTL`` and ``REGISTRY_OPTIONS``, then the ``FYERREG_*`` environment
variables: :mod:`fyerreg.config`), ``BALANCER``, ``DISCOVERY_OPTIONS``,
``HANDLE_SIGNALS``, ``DRAIN_DELAY``, ``READY_TIMEOUT``; the health check gating the
advertised status: ``HEALTH_CHECK`` (a callable or ``"module:callable"``),
``HEALTH_INTERVAL``, ``HEALTH_TIMEOUT``, ``HEALTH_FAILURES``, ``HEALTH_SUCCESSES``; Kubernetes
probes: ``PROBES`` (default False: the app answers ``HEALTHZ_PATH`` and ``READYZ_PATH``, default
``/healthz`` and ``/readyz``, itself otherwise) and ``UNREADY_DELAY`` (see :mod:`fyerreg.serving.probes`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional

from flask import Flask, current_app

from ..serving.address import join_host_port
from ._integration import Integration, RegistrySource, Settings, reloader_parent, should_register

if TYPE_CHECKING:
    from ..discovery import Discovery
    from ..registry.base import Registry

__all__ = ["FyerReg"]


class FyerReg:
    """Registers a Flask app once it serves and deregisters it at exit.

    Per-app state is ``app.extensions["fyerreg"]`` (``.registry``, ``.discovery``,
    ``.registration``); the properties here read the current app's.
    """

    def __init__(self, app: Optional[Flask] = None, *, registry: RegistrySource = None) -> None:
        self._registry = registry
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``FYERREG_*`` config and start registering as soon as it serves."""
        defaults: Dict[str, Any] = {"service_name": app.name, "address": _default_address()}
        if self._registry is not None:
            defaults["registry"] = self._registry
        settings = Settings.from_mapping(app.config, prefix="FYERREG_", source="app.config", **defaults)
        reason = ("app.testing is set" if app.testing else
                  "this is the reloader's watching process" if app.debug and reloader_parent("WERKZEUG_RUN_MAIN")
                  else "")
        register = should_register(settings.register, auto=not reason, why_not=reason)
        integration = Integration(settings, register=register)
        app.extensions["fyerreg"] = integration
        if settings.probes:
            from ..serving.http_probes import WSGIProbes

            app.wsgi_app = WSGIProbes(app.wsgi_app, integration.probes,  # type: ignore[method-assign]
                                      healthz_path=settings.healthz_path, readyz_path=settings.readyz_path)
        integration.start()

    @property
    def registry(self) -> Registry:
        """The current app's registry."""
        return _state().registry

    @property
    def discovery(self) -> Discovery:
        """The current app's discovery."""
        return _state().discovery


def _state() -> Integration:
    state: Integration = current_app.extensions["fyerreg"]
    return state


def _default_address() -> str:
    host = os.environ.get("FLASK_RUN_HOST", "127.0.0.1")
    port = os.environ.get("FLASK_RUN_PORT", "5000")
    return join_host_port(host, int(port)) if port.isdigit() else f"{host}:{port}"
