"""What the Flask and Django integrations share: settings, a lazily built registry and discovery,
and the app's registration."""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .. import _fork
from ..config import connect, registry_options
from ..errors import RegistryClosedError
from ..registry.base import Registry
from ..serving import InstanceSpec, ServingRegistration
from ..serving.health import as_health_check
from ..serving.probes import (
    DEFAULT_HEALTHZ_PATH,
    DEFAULT_READYZ_PATH,
    DEFAULT_UNREADY_DELAY,
    Probes,
    ProbeSource,
    check_path,
)

if TYPE_CHECKING:
    from ..discovery import Discovery

logger = logging.getLogger("fyerreg.contrib")

RegistrySource = Union[Registry, Callable[[], Registry], None]

_registered_by_server: Optional[str] = None
"""Set (to the hook's name) when a process manager registers on the app's behalf, e.g. a gunicorn master."""
_server_probes: Optional[ProbeSource] = None
"""The probes of that server's registration, when it serves them (gunicorn with ``probes=True``)."""


def registered_by_server(name: str, *, probes: Optional[ProbeSource] = None) -> None:
    """Tell apps in this process and its forked children that the server registers them (and answers ``probes``)."""
    global _registered_by_server, _server_probes
    _registered_by_server = name
    _server_probes = probes


# The settings that describe the instance, and the InstanceSpec field each one fills.
_SPEC_SETTINGS = {"service_name": "service", "service_version": "version", "address": "address",
                  "advertise_address": "advertise_address", "instance_id": "instance_id", "weight": "weight",
                  "metadata": "metadata", "drain_delay": "drain_delay"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The ``FYERREG`` settings of an app, from Flask's ``FYERREG_*`` keys or Django's ``FYERREG`` dict.

    ``spec`` is the instance the app registers (from ``SERVICE_NAME``, ``SERVICE_VERSION``,
    ``ADDRESS``, ``ADVERTISE_ADDRESS``, ``INSTANCE_ID``, ``WEIGHT``, ``METADATA`` and
    ``DRAIN_DELAY``); the other fields say how to register and discover. ``ENDPOINTS``,
    ``NAMESPACE``, ``TTL`` and ``REGISTRY_OPTIONS`` not set fall back to the ``FYERREG_*``
    environment variables (:mod:`fyerreg.config`), then to the defaults; so does
    ``ADVERTISE_ADDRESS`` (:class:`~fyerreg.serving.InstanceSpec`). ``HEALTH_CHECK``
    (a callable or ``"module:callable"``) gates the advertised status, run every
    ``HEALTH_INTERVAL`` seconds within ``HEALTH_TIMEOUT``, disabling after
    ``HEALTH_FAILURES`` failures and enabling after ``HEALTH_SUCCESSES`` successes.
    """

    spec: InstanceSpec
    register: Union[bool, str] = "auto"
    registry: Any = None
    endpoints: Optional[List[str]] = None
    namespace: Optional[str] = None
    ttl: Optional[float] = None
    registry_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    balancer: str = "round_robin"
    discovery_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    handle_signals: bool = False
    ready_timeout: float = 60.0
    # Kubernetes probes (fyerreg.serving.probes): PROBES, HEALTHZ_PATH, READYZ_PATH, UNREADY_DELAY
    probes: bool = False
    healthz_path: str = DEFAULT_HEALTHZ_PATH
    readyz_path: str = DEFAULT_READYZ_PATH
    unready_delay: Optional[float] = None
    # Health-gated registration: HEALTH_CHECK (a callable or "module:callable") and how it runs.
    health_check: Any = None
    health_interval: Optional[float] = None
    health_timeout: Optional[float] = None
    health_failures: Optional[int] = None
    health_successes: Optional[int] = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, prefix: str, source: str, **defaults: Any) -> Settings:
        """Read ``<prefix><NAME>`` keys (``NAME`` upper-case); an unknown key raises ValueError naming it."""
        names = set(_SPEC_SETTINGS) | {f.name for f in dataclasses.fields(cls) if f.name != "spec"}
        values = {"address": "127.0.0.1:8000", **defaults}
        for key, value in data.items():
            if not isinstance(key, str) or not key.startswith(prefix):
                continue
            name = key[len(prefix):].lower()
            if name not in names:
                raise ValueError(f"unknown setting {source}{key!r}; known: "
                                 + ", ".join(prefix + n.upper() for n in sorted(names)))
            values[name] = value
        if not values.get("service_name"):
            raise ValueError(f"{source}{prefix}SERVICE_NAME is required")
        if values.get("register", "auto") not in (True, False, "auto"):
            raise ValueError(f"{source}{prefix}REGISTER must be True, False or 'auto'")
        if not isinstance(values.get("probes", False), bool):
            raise ValueError(f"{source}{prefix}PROBES must be True or False")
        for name in ("healthz_path", "readyz_path"):
            if name in values:
                check_path(f"{source}{prefix}{name.upper()}", values[name])
        unready = values.get("unready_delay")
        if unready is not None and (not isinstance(unready, (int, float)) or not unready >= 0):
            raise ValueError(f"{source}{prefix}UNREADY_DELAY must be a number >= 0, got {unready!r}")
        described = {_SPEC_SETTINGS[name]: values.pop(name) for name in list(values) if name in _SPEC_SETTINGS}
        settings = cls(InstanceSpec(**described), **values)
        settings.health(source=source, prefix=prefix)  # a bad HEALTH_* value fails here, naming the setting
        return settings

    def health(self, *, source: str = "", prefix: str = "") -> Any:
        """The :class:`~fyerreg.serving.health.HealthCheck` of the ``HEALTH_*`` settings (None without one)."""
        try:
            return as_health_check(self.health_check, interval=self.health_interval, timeout=self.health_timeout,
                                   failures=self.health_failures, successes=self.health_successes)
        except (TypeError, ValueError) as exc:
            text = str(exc)
            for field in ("interval", "timeout", "failures", "successes", "check"):
                text = text.replace(f"health_check.{field}", f"{source}[{prefix}HEALTH_{field.upper()}]")
            text = text.replace("health_check ", f"{source}[{prefix}HEALTH_CHECK] ")
            raise type(exc)(text) from None


class Integration:
    """One app's fyerreg state: ``registry``, ``discovery`` (both built on first use) and ``registration``."""

    def __init__(self, settings: Settings, *, register: bool) -> None:
        self.settings = settings
        _fork.track(self)  # renews its locks in a forked child
        self._lock = threading.Lock()
        self._registry: Optional[Registry] = None
        self._owns_registry = False
        self._discovery: Optional[Discovery] = None
        self._pid = os.getpid()
        self._closed = False
        self.registration: Optional[ServingRegistration] = None
        # A malformed FYERREG_* variable fails here, when the app starts, not at first use.
        check_registry_source(_options(settings) if settings.registry is None else settings.registry)
        if register:
            self.registration = ServingRegistration(
                self.registry, settings.spec, ready_timeout=settings.ready_timeout,
                handle_signals=settings.handle_signals, deregister_at_exit=False, health_check=settings.health(),
                unready_delay=unready_delay(settings.probes, settings.unready_delay),
            )
        atexit.register(self.close)

    @property
    def registry(self) -> Registry:
        """The registry: the one configured, or an ``EtcdRegistry`` built from the settings."""
        with self._lock:
            if self._registry is not None:
                return self._registry
        # Built (it connects) outside the lock, which close() takes: two first uses at once
        # may both build one, and the loser is closed.
        built, owns = _build_registry(self.settings)
        with self._lock:
            closed, existing = self._closed, self._registry
            if existing is None and not closed:
                self._registry, self._owns_registry = built, owns
                return built
        if owns:
            built.close()
        if existing is None:
            raise RegistryClosedError("the fyerreg integration was closed while its registry connected")
        return existing

    @property
    def discovery(self) -> Discovery:
        """A ``Discovery`` on :attr:`registry`, to find the services this app calls."""
        registry = self.registry
        with self._lock:
            if self._discovery is None:
                from ..discovery import Discovery

                self._discovery = Discovery(registry, balancer=self.settings.balancer,
                                            **dict(self.settings.discovery_options))
            return self._discovery

    @property
    def probes(self) -> ProbeSource:
        """``/healthz`` and ``/readyz`` of the app's registration (or of the server's that registers it)."""
        if self.registration is None and _server_probes is not None:
            return _server_probes
        return Probes(self.registration)

    def start(self) -> None:
        """Register the app as soon as it serves (when registration is on)."""
        if self.registration is not None:
            self.registration.start()

    def close(self) -> None:
        """Deregister, then close the discovery and the registry this integration built. Idempotent."""
        if os.getpid() != self._pid:
            return  # a forked child: the parent owns the registration
        with self._lock:
            if self._closed:
                return
            self._closed = True
            discovery, registry, owns = self._discovery, self._registry, self._owns_registry
        if self.registration is not None:
            self.registration.stop()
        if discovery is not None:
            discovery.close()
        if registry is not None and owns:
            registry.close()
        atexit.unregister(self.close)


def _build_registry(settings: Settings) -> Tuple[Registry, bool]:
    source = settings.registry
    if isinstance(source, Registry):
        return source, False
    if source is None:
        source = _options(settings)
    elif callable(source):
        built = source()
        if not isinstance(built, Registry):
            raise TypeError(f"the REGISTRY factory returned {type(built).__name__}, not a Registry")
        return built, True
    return build_registry(source), True


def _options(settings: Settings) -> Dict[str, Any]:
    """The registry options the settings give; the environment fills in the others."""
    options: Dict[str, Any] = {}
    if settings.endpoints is not None:
        options["endpoints"] = list(settings.endpoints)
    for name in ("namespace", "ttl"):
        if getattr(settings, name) is not None:
            options[name] = getattr(settings, name)
    return {**options, **settings.registry_options}


def check_registry_source(spec: Any) -> None:
    """Raise ConfigurationError now when ``spec`` (a dict of options, or None) meets a malformed ``FYERREG_*``."""
    if spec is None or isinstance(spec, Mapping):
        registry_options(os.environ, **dict(spec or {}))


def build_registry(spec: Any) -> Registry:
    """A registry from ``"module:factory"`` (called with no arguments) or a dict of ``EtcdRegistry`` options.

    The options a dict does not give come from the environment (:func:`fyerreg.connect`).
    """
    if isinstance(spec, str):
        module, _, name = spec.partition(":")
        if not module or not name:
            raise ValueError(f"registry {spec!r} must be 'module:factory'")
        registry = getattr(importlib.import_module(module), name)()
    elif isinstance(spec, Mapping):
        registry = connect(**dict(spec))
    else:
        raise TypeError("REGISTRY must be a Registry, a factory, 'module:factory' or a dict of EtcdRegistry options")
    if not isinstance(registry, Registry):
        raise TypeError(f"{spec!r} gave {type(registry).__name__}, not a Registry")
    return registry


def unready_delay(probes: bool, setting: Optional[float]) -> float:
    """Seconds between "readiness fails" and the deregistration: the setting, else 1 s with probes, 0 without."""
    if setting is not None:
        return float(setting)
    return DEFAULT_UNREADY_DELAY if probes else 0.0


def should_register(setting: Union[bool, str], *, auto: bool, why_not: str) -> bool:
    """Resolve a ``REGISTER`` setting: explicit booleans win; ``"auto"`` follows ``auto``."""
    if setting is True or setting is False:
        return setting
    if _registered_by_server is not None:
        logger.info("not registering from the app: %s registers it", _registered_by_server)
        return False
    if not auto:
        logger.info("not registering: %s (set REGISTER to True to force it)", why_not)
    return auto


def reloader_parent(run_main_var: str) -> bool:
    """True in a development server's file-watching parent process, which does not serve requests."""
    return os.environ.get(run_main_var) != "true" and "--noreload" not in sys.argv and "--no-reload" not in sys.argv
