"""The AppConfig of ``fyerreg.contrib.django``; see the package docstring."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from django.apps import AppConfig, apps
from django.conf import settings as django_settings

from .._integration import Integration, Settings, reloader_parent, should_register
from ._reloader import pass_sigterm_to_child

PROBES_MIDDLEWARE = "fyerreg.contrib.django.probes.ProbesMiddleware"

__all__ = ["FyerRegConfig", "state"]


class FyerRegConfig(AppConfig):  # type: ignore[misc]
    """Reads ``settings.FYERREG`` when Django starts and registers the site once it serves."""

    name = "fyerreg.contrib.django"
    label = "fyerreg"
    verbose_name = "fyerreg service registration"
    default = True

    integration: Optional[Integration] = None

    def ready(self) -> None:
        config = getattr(django_settings, "FYERREG", None)
        if not isinstance(config, dict):
            raise ValueError("settings.FYERREG must be a dict with at least SERVICE_NAME")
        argv = list(sys.argv)
        defaults: Dict[str, Any] = {}
        runserver = _runserver_address(argv)
        if runserver is not None:
            defaults["address"] = runserver
        settings = Settings.from_mapping(config, prefix="", source="settings.FYERREG", **defaults)
        reason = ("not running under manage.py runserver" if runserver is None else
                  "this is the autoreloader's watching process" if reloader_parent("RUN_MAIN") else "")
        integration = Integration(settings, register=should_register(settings.register, auto=not reason,
                                                                     why_not=reason))
        type(self).integration = integration
        if settings.probes:
            # Read by the WSGI/ASGI handler, which is built after ready(): first, so that the probes
            # pass neither ALLOWED_HOSTS (kubelet dials the pod IP) nor the app's own middleware.
            middleware = list(getattr(django_settings, "MIDDLEWARE", None) or [])
            if PROBES_MIDDLEWARE not in middleware:
                django_settings.MIDDLEWARE = [PROBES_MIDDLEWARE, *middleware]
        integration.start()
        if settings.handle_signals and runserver is not None:
            _handle_runserver_signals(integration, parent=reloader_parent("RUN_MAIN"))


def state() -> Integration:
    """The running site's fyerreg state (``.registry``, ``.discovery``, ``.registration``)."""
    config = apps.get_app_config("fyerreg")
    if not isinstance(config, FyerRegConfig) or config.integration is None:
        raise LookupError("fyerreg.contrib.django is not in INSTALLED_APPS or Django is not set up")
    return config.integration


def _handle_runserver_signals(integration: Integration, *, parent: bool) -> None:
    """Make SIGTERM deregister under runserver's autoreloader, sent to its parent or to both processes."""
    from django.utils.autoreload import autoreload_started

    if parent:
        pass_sigterm_to_child()
        return
    registration = integration.registration
    if registration is not None:
        # The autoreloader sets its own SIGTERM handler after ready(): ours goes back on top.
        autoreload_started.connect(lambda sender, **kwargs: registration.install_signal_handlers(),
                                   weak=False, dispatch_uid="fyerreg-signals")


def _runserver_address(argv: List[str]) -> Optional[str]:
    if "runserver" not in argv[1:]:
        return None
    args = [a for a in argv[argv.index("runserver") + 1:] if not a.startswith("-")]
    if not args:
        return "127.0.0.1:8000"
    addr = args[0]
    if addr.isdigit():
        return f"127.0.0.1:{addr}"
    if addr == "0" or addr.startswith("0:"):
        addr = "0.0.0.0" + addr[1:]  # runserver's shorthand
    return addr if ":" in addr else f"{addr}:8000"
