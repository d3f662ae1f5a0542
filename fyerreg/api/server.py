"""``Server``: expose an object's methods over JSON/HTTP and register where it listens."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from .. import _fork, _signals
from .._log import instance_extra
from ..config import connect, registry_options
from ..errors import InvalidInstanceError, RegistryClosedError
from ..naming import DEFAULT_WEIGHT, Instance, Status
from ..registry.base import Registry
from ..serving import DEFAULT_DRAIN_DELAY, InstanceSpec, ServingRegistration
from ..serving.address import join_host_port
from ..serving.health import as_health_check
from ..serving.http_probes import WSGIProbes
from ..serving.probes import DEFAULT_HEALTHZ_PATH, DEFAULT_READYZ_PATH, DEFAULT_UNREADY_DELAY, Probes, check_path
from ._app import DEFAULT_MAX_BODY, ServiceApp
from ._http import HttpServer, WsgiApp

__all__ = ["ServerOptions", "Server"]

logger = logging.getLogger("fyerreg.api.server")


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How a :class:`Server` listens and registers (the Go ``api.ServerOptions``, plus a few).

    ``address`` is where to bind (``":8000"`` = every interface, port 0 = any free
    port). ``advertise_address`` is what others dial (default ``FYERREG_ADVERTISE_ADDRESS``);
    when binding every interface and none is given, ``POD_IP``, ``HOST_IP`` or the host's
    outbound IP is advertised, never ``0.0.0.0``. With ``enable_registry`` the server
    registers ``service_name``/``service_version`` in ``registry`` once it answers; without
    a ``registry`` it connects one with :func:`fyerreg.connect` (configured by the
    ``FYERREG_*`` environment variables) on start and closes it on stop. ``drain_delay`` is
    how long a stopping server keeps serving after deregistering, so that clients see the
    removal before it closes.
    At most ``max_connections`` connections are served at once (more wait in the listen
    backlog until one ends); each request must arrive whole, head and body, within
    ``request_timeout`` seconds (else 408 or the connection is closed), and a kept-alive
    connection is closed after ``idle_timeout`` seconds without a request.
    With ``probes`` the server also answers ``GET healthz_path`` and ``GET readyz_path``
    (:mod:`fyerreg.serving.probes`), and a stop fails readiness ``unready_delay`` seconds
    (default 1 s with probes, 0 without) before it deregisters.
    ``health_check`` (a :class:`~fyerreg.serving.health.HealthCheck` or a callable) gates
    the advertised status while registered.
    """

    address: str = ":8000"
    enable_registry: bool = False
    registry: Optional[Registry] = None
    service_name: str = ""
    service_version: str = "1.0.0"
    weight: int = DEFAULT_WEIGHT
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    advertise_address: Optional[str] = None
    instance_id: Optional[str] = None
    drain_delay: float = DEFAULT_DRAIN_DELAY
    idle_timeout: float = 60.0
    request_timeout: float = 30.0
    max_connections: int = 256
    max_body: int = DEFAULT_MAX_BODY
    register_timeout: Optional[float] = None
    # Kubernetes probes
    probes: bool = False
    healthz_path: str = DEFAULT_HEALTHZ_PATH
    readyz_path: str = DEFAULT_READYZ_PATH
    unready_delay: Optional[float] = None
    health_check: Any = None

    def __post_init__(self) -> None:
        spec = self.spec  # a malformed address or drain_delay raises here
        if self.idle_timeout < 0:
            raise ValueError("idle_timeout must be >= 0")
        if self.max_body < 1:
            raise ValueError("max_body must be >= 1")
        if not self.request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0, got {self.request_timeout!r}")
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or self.max_connections < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {self.max_connections!r}")
        if self.probes and not self.enable_registry:
            raise ValueError("probes answer from the registration: set enable_registry (and registry) too")
        check_path("healthz_path", self.healthz_path)
        check_path("readyz_path", self.readyz_path)
        if self.unready_delay is not None and not self.unready_delay >= 0:
            raise ValueError(f"unready_delay must be >= 0, got {self.unready_delay!r}")
        if self.enable_registry:
            if self.registry is None:
                registry_options()  # a malformed FYERREG_* variable fails here, before anything is bound
            elif not isinstance(self.registry, Registry):
                raise ValueError("registry must be a fyerreg Registry (or None: from the environment) "
                                 "when enable_registry is True")
            try:
                spec.validate()
            except InvalidInstanceError as exc:
                option = _OPTION_OF_FIELD.get(exc.field or "", exc.field)
                raise InvalidInstanceError(f"{option}: {exc}", field=option) from None
        object.__setattr__(self, "health_check", as_health_check(self.health_check))

    @property
    def spec(self) -> InstanceSpec:
        """The instance these options describe, before the port is bound."""
        return InstanceSpec(self.service_name, self.service_version, self.address,
                            advertise_address=self.advertise_address, instance_id=self.instance_id,
                            weight=self.weight, metadata=self.metadata, drain_delay=self.drain_delay)


_OPTION_OF_FIELD = {"service": "service_name", "version": "service_version", "id": "instance_id"}


class Server:
    """Serves registered objects as ``POST /<Service>/<Method>`` and registers itself.

    ``start()`` binds, starts serving, and only then registers, so no client is sent
    to a port that does not answer yet. ``stop(grace)`` deregisters first, keeps
    serving for ``drain_delay`` while clients learn of it, waits for calls in flight,
    then closes. The same app is :attr:`wsgi_app`, for gunicorn, waitress, Flask or
    Django. A server is a context manager (start on enter, stop on exit).
    """

    def __init__(self, options: Optional[ServerOptions] = None) -> None:
        self.options = options or ServerOptions()
        _fork.track(self)  # renews its locks in a forked child
        self._app = ServiceApp(max_body=self.options.max_body)
        self._lock = threading.Lock()
        self._http: Optional[HttpServer] = None
        self._instance: Optional[Instance] = None
        self._registration: Optional[ServingRegistration] = None
        self._owned_registry: Optional[Registry] = None  # connected from the environment: closed on stop
        self._stopped = threading.Event()
        self._stop_requested = threading.Event()
        self._was_stopped = False

    def register(self, obj: object, name: Optional[str] = None) -> List[str]:
        """Expose ``obj``'s public methods as ``<name>.<Method>`` (name defaults to the class name).

        Each method takes at most one argument, the request (a dataclass when annotated
        with one, else the decoded JSON), and returns something JSON-able or a dataclass.
        Returns the names exposed.
        """
        return self._app.add(obj, name)

    @property
    def wsgi_app(self) -> ServiceApp:
        """The WSGI application serving the registered methods."""
        return self._app

    @property
    def address(self) -> Optional[str]:
        """The local ``host:port`` bound, once started."""
        if self._http is None:
            return None
        host = self._http.server_address[0]
        return join_host_port(str(host), self._http.port)

    @property
    def instance(self) -> Optional[Instance]:
        """The instance this server advertises (``address`` is what others dial), once started."""
        registration = self._registration
        return registration.instance if registration is not None else self._instance

    def start(self) -> None:
        """Bind, serve in background threads, then register. A second call does nothing.

        Raises OSError when the address cannot be bound, and the registry's error when
        registration fails (the server is then closed again).
        """
        opts = self.options
        with self._lock:
            if self._was_stopped:
                raise RegistryClosedError("this server was stopped; create a new one")
            if self._http is not None:
                return
            spec = opts.spec
            bind_host, port = spec.bind
            app: WsgiApp = self._app
            if opts.probes:
                app = WSGIProbes(self._app, Probes(lambda: self._registration), healthz_path=opts.healthz_path,
                                 readyz_path=opts.readyz_path)
            http = HttpServer(bind_host, port, app, idle_timeout=opts.idle_timeout,
                              request_timeout=opts.request_timeout, max_connections=opts.max_connections)
            http.start()
            self._http = http
            self._instance = spec.instance(http.port)
        logger.info("serving %s on %s", ", ".join(self._app.methods) or "nothing", self.address,
                    extra=instance_extra(self._instance))
        if opts.enable_registry:
            unready = opts.unready_delay if opts.unready_delay is not None else \
                DEFAULT_UNREADY_DELAY if opts.probes else 0.0
            try:
                if opts.registry is None:
                    self._owned_registry = connect()
                registry = opts.registry or self._owned_registry
                assert registry is not None
                registration = ServingRegistration(registry, spec, bound_port=http.port, wait_ready=False,
                                                   deregister_at_exit=False, timeout=opts.register_timeout,
                                                   unready_delay=unready, health_check=opts.health_check)
                registration.start()
            except BaseException:
                with self._lock:
                    self._http = None
                http.close(1.0)
                self._close_owned_registry()
                raise
            self._registration = registration

    def stop(self, grace: float = 10.0) -> None:
        """Deregister, keep serving ``drain_delay`` seconds, wait up to ``grace`` for calls in flight, close.

        Idempotent; errors from the registry are logged, never stop the shutdown.
        """
        with self._lock:
            http, self._http = self._http, None
            self._was_stopped = True
        deadline = time.monotonic() + grace
        registration = self._registration
        if registration is not None:
            # Clients still holding the old instance set may send a few more calls: the drain serves them.
            registration.stop(max_drain=grace)
        self._close_owned_registry()
        if http is not None:
            http.draining = True
            if not self._app.wait_idle(max(deadline - time.monotonic(), 0.0)):
                logger.warning("stopping with %d calls still in flight after %.1fs", self._app.in_flight, grace,
                               extra=self._extra())
            http.close(max(deadline - time.monotonic(), 1.0))
            logger.info("stopped serving on %s", join_host_port(str(http.server_address[0]), http.port),
                        extra=self._extra())
        self._stopped.set()
        self._stop_requested.set()

    def _close_owned_registry(self) -> None:
        registry, self._owned_registry = self._owned_registry, None
        if registry is not None:
            registry.close()

    def set_status(self, status: Status) -> None:
        """Advertise the instance as enabled or disabled (disabled instances get no new calls)."""
        registration = self._registration
        if registration is None or not registration.registered:
            raise RegistryClosedError("the server is not registered")
        registration.set_status(status)

    def maintenance(self, on: bool) -> None:
        """Advertise the instance disabled while ``on``, whatever its health check says; off, the check decides."""
        registration = self._registration
        if registration is None:
            raise RegistryClosedError("the server is not registered")
        registration.maintenance(on)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the server has stopped or ``timeout`` passed; True when stopped."""
        return self._stopped.wait(timeout)

    def serve_forever(self, *, grace: float = 10.0, handle_signals: bool = True) -> None:
        """Start, block until SIGTERM/SIGINT (or :meth:`stop` from another thread), then stop gracefully."""
        self.start()
        restore = _signals.install(lambda signum: self._stop_requested.set(), chain=False) if handle_signals \
            else (lambda: None)
        try:
            while not self._stop_requested.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            try:
                self.stop(grace)
            finally:
                restore()

    def _extra(self) -> Dict[str, str]:
        instance = self.instance
        if instance is None:
            return {"service": self.options.service_name}
        return instance_extra(instance)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Server {self.options.service_name or '-'} {self.address or 'not started'}>"
