"""Register an ASGI app (FastAPI, Starlette, any ASGI 3 app) while its server serves it.

::

    registration = ASGIRegistration("user-service", "1.0.0", registry={"endpoints": ["etcd:2379"]})
    app = FastAPI(lifespan=registration.lifespan())      # or lifespan(your_own_lifespan)
    app = RegistrationMiddleware(any_asgi_app, registration)  # any ASGI 3 app

With ``probes=True`` the app also answers ``/healthz`` and ``/readyz``
(:mod:`fyerreg.serving.probes`): ``RegistrationMiddleware`` serves them, and with the
``lifespan=`` helper wrap the app in ``registration.probes_middleware(app)``.

The registration starts with the ASGI ``lifespan`` startup and is the one lifecycle of
:class:`fyerreg.serving.ServingRegistration`: once the server has bound its port and the
port answers, the instance is registered; SIGTERM/SIGINT deregister first, drain while
the server still serves, and then take the server's own effect. Nothing here imports a
server or a framework, and no registry call runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, FrozenSet, Mapping, MutableMapping, Optional, Union

from .. import _signals
from .._threads import join_thread, start_thread
from ..errors import RegistryUnavailableError
from ..naming import DEFAULT_WEIGHT, Endpoint, Instance
from ..registry.base import Registry
from ..retry import Retry
from ..serving import DEFAULT_DRAIN_DELAY, InstanceSpec, ServingRegistration
from ..serving.address import join_host_port, split_host_port
from ..serving.health import Check, HealthCheck, as_health_check
from ..serving.http_probes import ASGIProbes
from ..serving.listeners import Listener, listening, wait_for_new_listener
from ..serving.probes import DEFAULT_HEALTHZ_PATH, DEFAULT_READYZ_PATH, Probes, check_path
from ._integration import build_registry, check_registry_source
from ._integration import unready_delay as _unready_delay

__all__ = ["ASGIRegistration", "RegistrationMiddleware"]

logger = logging.getLogger("fyerreg.contrib.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
RegistrySource = Union[Registry, Callable[[], Registry], str, Mapping[str, Any], None]

_CONNECT_RETRY = Retry(max_tries=None, delay=0.5, backoff=2.0, max_delay=10.0)
_JOIN_WAIT = 3.0  # seconds shutdown waits for a start still connecting; it closes what it connects itself


class ASGIRegistration:
    """Keeps one instance of an ASGI app registered while its server serves it, in this process.

    ``registry`` is a :class:`~fyerreg.registry.base.Registry` (yours: not closed here), a
    factory, ``"module:factory"`` or a dict of ``EtcdRegistry`` options (default ``{}``;
    options not given come from the ``FYERREG_*`` environment variables, as in
    :func:`fyerreg.connect`, and a malformed one raises ConfigurationError here), built in
    a thread at startup and retried with backoff while etcd does not answer; those are
    closed at shutdown. ``address`` is where
    the server listens (``":8000"``, ``"0.0.0.0:8000"``); without it, or with port 0, it is
    the TCP socket the server starts listening on after the lifespan startup, read from this
    process's sockets. The advertised address follows :class:`~fyerreg.serving.InstanceSpec`
    (``advertise_address``, else ``FYERREG_ADVERTISE_ADDRESS``; for every interface
    ``POD_IP``, ``HOST_IP`` or the outbound IP; never ``0.0.0.0``).
    With ``handle_signals`` (the default) SIGTERM/SIGINT deregister and drain
    ``drain_delay`` seconds in a thread while the server keeps serving, then reach the
    server's own handler. ``endpoints`` names other ports the process serves, as in
    :class:`~fyerreg.serving.InstanceSpec`. Under ``uvicorn --workers N`` each worker process registers its
    own instance at the shared address.

    ``probes`` turns on ``/healthz`` and ``/readyz`` (``healthz_path``, ``readyz_path``)
    in :class:`RegistrationMiddleware` and :meth:`probes_middleware`; a stop then fails
    readiness ``unready_delay`` seconds (default 1 s with probes, 0 without) before it
    deregisters.
    """

    def __init__(
        self,
        service: str,
        version: str = "1.0.0",
        *,
        registry: RegistrySource = None,
        address: Optional[str] = None,
        advertise_address: Optional[str] = None,
        instance_id: Optional[str] = None,
        weight: int = DEFAULT_WEIGHT,
        metadata: Optional[Mapping[str, str]] = None,
        endpoints: Optional[Mapping[str, Union[str, Endpoint]]] = None,
        drain_delay: float = DEFAULT_DRAIN_DELAY,
        ready_timeout: float = 60.0,
        handle_signals: bool = True,
        timeout: Optional[float] = None,
        # Kubernetes probes
        probes: bool = False,
        healthz_path: str = DEFAULT_HEALTHZ_PATH,
        readyz_path: str = DEFAULT_READYZ_PATH,
        unready_delay: Optional[float] = None,
        health_check: Union[HealthCheck, Check, str, None] = None,
    ) -> None:
        if not (registry is None or isinstance(registry, (Registry, str, Mapping)) or callable(registry)):
            raise TypeError("registry must be a Registry, a factory, 'module:factory' or a dict of EtcdRegistry "
                            f"options, got {type(registry).__name__}")
        if not ready_timeout > 0:
            raise ValueError(f"ready_timeout must be > 0, got {ready_timeout!r}")
        self.spec = InstanceSpec(service, version, address or ":0", advertise_address=advertise_address,
                                 instance_id=instance_id, weight=weight, metadata=metadata or {},
                                 drain_delay=drain_delay, endpoints=endpoints or {})
        self.spec.validate()
        self._find_port = split_host_port(self.spec.address, field="address")[1] == 0
        self._source: RegistrySource = {} if registry is None else registry
        check_registry_source(self._source)
        self._ready_timeout = ready_timeout
        self._handle_signals = handle_signals
        self._timeout = timeout
        self.serves_probes = probes
        self.healthz_path = check_path("healthz_path", healthz_path)
        self.readyz_path = check_path("readyz_path", readyz_path)
        if unready_delay is not None and not unready_delay >= 0:
            raise ValueError(f"unready_delay must be >= 0, got {unready_delay!r}")
        self._unready_delay = _unready_delay(probes, unready_delay)
        self.probes = Probes(lambda: self.registration)
        """``healthz()``/``readyz()`` of the current instance's registration ("starting" before it exists)."""
        self._health_check = as_health_check(health_check)
        # Reentrant: a signal handler may take it in the main thread while startup() holds it there.
        self._lock = threading.RLock()
        self._run: Optional[_Run] = None

    @property
    def registration(self) -> Optional[ServingRegistration]:
        """The lifecycle of the current instance, once the server's port is known."""
        run = self._run
        return run.registration if run is not None else None

    @property
    def instance(self) -> Optional[Instance]:
        """The instance registered (or to be), once the server's port is known."""
        registration = self.registration
        return registration.instance if registration is not None else None

    @property
    def registry(self) -> Optional[Registry]:
        """The registry, once connected (None before startup and after shutdown)."""
        run = self._run
        return run.registry if run is not None else None

    @property
    def registered(self) -> bool:
        """True while the instance is registered."""
        registration = self.registration
        return registration is not None and registration.registered

    async def startup(self) -> None:
        """Begin registering (the server binds after the lifespan startup) and return at once. Idempotent."""
        with self._lock:
            if self._run is not None and not self._run.stopping.is_set():
                return
            run = self._run = _Run()
        if self._handle_signals:
            run.restore_signals = _signals.install_deferred(lambda signum, resume: self._on_signal(run, resume))
        # Taken now, before the server binds, so that its socket is the one that is new afterwards.
        before = listening() if self._find_port else frozenset()
        run.starter = start_thread(f"asgi-{self.spec.service}", self._start, run, before)

    async def shutdown(self) -> None:
        """Deregister (unless a signal did), drain, and close the registry built here. Idempotent."""
        with self._lock:
            run = self._run
        if run is None:
            return
        run.stopping.set()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def finished() -> None:
            loop.call_soon_threadsafe(resolve)

        with self._lock:
            registration = run.registration
        if registration is None:
            start_thread(f"asgi-close-{self.spec.service}", self._close, run, finished)
        else:
            registration.stop_in_thread(lambda: self._close(run, finished))
        await asyncio.shield(done)
        run.restore_signals()

    def probes_middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` answering ``healthz_path`` and ``readyz_path`` from :attr:`probes` (for the ``lifespan=`` style)."""
        return ASGIProbes(app, self.probes, healthz_path=self.healthz_path, readyz_path=self.readyz_path)

    def lifespan(self, inner: Optional[Lifespan] = None) -> Lifespan:
        """A ``lifespan=`` for FastAPI/Starlette: ``inner``'s (if any) around the registration.

        The instance is registered after ``inner`` started and deregistered before it stops;
        whatever ``inner`` yields (Starlette's lifespan state) is yielded on.
        """

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with contextlib.AsyncExitStack() as stack:
                state = None if inner is None else await stack.enter_async_context(inner(app))
                await self.startup()
                try:
                    yield state
                finally:
                    await self.shutdown()

        return lifespan

    def _on_signal(self, run: _Run, resume: Callable[[], None]) -> None:
        run.stopping.set()
        with self._lock:
            registration = run.registration
        if registration is None:
            resume()
        else:
            registration.stop_in_thread(resume)

    def _start(self, run: _Run, before: FrozenSet[Listener]) -> None:
        spec = self.spec
        if self._find_port:
            bound = wait_for_new_listener(before, timeout=self._ready_timeout, stop=run.stopping)
            if bound is None:
                if not run.stopping.is_set():
                    logger.error("no new listening TCP socket within %.0fs; %s is not registered (pass address=)",
                                 self._ready_timeout, spec.service)
                return
            host = split_host_port(spec.address, field="address")[0]
            spec = spec.replace(address=join_host_port(host or bound[0], bound[1]))
        registry = self._connect(run)
        if registry is None:
            return
        with self._lock:
            if run.stopping.is_set():
                late = True
            else:
                late = False
                run.registry, run.owns_registry = registry, not isinstance(self._source, Registry)
                run.registration = ServingRegistration(registry, spec, ready_timeout=self._ready_timeout,
                                                       timeout=self._timeout, unready_delay=self._unready_delay,
                                                       health_check=self._health_check)
                run.registration.start()
        if late and not isinstance(self._source, Registry):
            registry.close()

    def _connect(self, run: _Run) -> Optional[Registry]:
        source = self._source
        if isinstance(source, Registry):
            return source

        def build() -> Registry:
            built = source() if callable(source) else build_registry(source)
            if not isinstance(built, Registry):
                raise TypeError(f"the registry factory returned {type(built).__name__}, not a Registry")
            return built

        def retrying(attempt: int, exc: BaseException, wait: float) -> None:
            log = logger.warning if attempt == 1 else logger.debug
            log("etcd does not answer (%s); the app serves, and is registered once etcd answers", exc)

        try:
            return _CONNECT_RETRY.call(build, retry_on=(RegistryUnavailableError,), stop=run.stopping,
                                       on_retry=retrying)
        except RegistryUnavailableError:
            return None
        except Exception:
            logger.exception("cannot build the registry of %s; it is not registered", self.spec.service)
            return None

    def _close(self, run: _Run, finished: Callable[[], None]) -> None:
        try:
            if run.starter is not None and not join_thread(run.starter, _JOIN_WAIT):
                logger.warning("the start of %s is still connecting; it closes what it connects", self.spec.service)
            with self._lock:
                registry, owns, run.registry = run.registry, run.owns_registry, None
            if registry is not None and owns:
                registry.close()
        finally:
            finished()

    def __repr__(self) -> str:
        state = "registered" if self.registered else "not registered"
        return f"<{type(self).__name__} {self.spec.service} {self.spec.version} {state}>"


class _Run:
    """One startup-to-shutdown of an :class:`ASGIRegistration`."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.starter: Optional[threading.Thread] = None
        self.registry: Optional[Registry] = None
        self.owns_registry = False
        self.registration: Optional[ServingRegistration] = None
        self.restore_signals: Callable[[], None] = lambda: None


class RegistrationMiddleware:
    """ASGI 3 middleware registering the app it wraps while it is served.

    ``RegistrationMiddleware(app, registration)``, or Starlette's
    ``app.add_middleware(RegistrationMiddleware, registration=registration)``. It answers
    the ``lifespan`` scope: the wrapped app's startup runs first, then the registration
    starts; on shutdown the registration stops first. A wrapped app that does not speak
    lifespan (it raises or returns on that scope) is left out of it. Other scopes go to
    the app untouched, but for the probe paths when the registration has ``probes`` on.
    """

    def __init__(self, app: ASGIApp, registration: ASGIRegistration) -> None:
        if not isinstance(registration, ASGIRegistration):
            raise TypeError(f"registration must be an ASGIRegistration, got {type(registration).__name__}")
        self.app = registration.probes_middleware(app) if registration.serves_probes else app
        self.registration = registration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await _Lifespan(self.app, self.registration, scope, receive, send).run()


class _Lifespan:
    """The lifespan protocol between the server and a wrapped app, with the registration in it."""

    def __init__(self, app: ASGIApp, registration: ASGIRegistration, scope: Scope, receive: Receive,
                 send: Send) -> None:
        self.app, self.registration, self.scope = app, registration, scope
        self.server_receive, self.server_send = receive, send
        self.phase = "startup"  # then "serving", "failed", "done"
        self.startup_read = False

    async def run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except BaseException as exc:
            if self.phase != "startup" or isinstance(exc, asyncio.CancelledError):
                raise
            logger.info("the wrapped app does not support the ASGI lifespan (%r); fyerreg answers it alone", exc)
        if self.phase == "startup":
            await self._alone()
        elif self.phase == "serving":  # the app returned before the shutdown: still deregister then
            message = await self.server_receive()
            if message["type"] == "lifespan.shutdown":
                await self.registration.shutdown()
                await self.server_send({"type": "lifespan.shutdown.complete"})

    async def _alone(self) -> None:
        if not self.startup_read:
            message = await self.server_receive()
            if message["type"] != "lifespan.startup":
                return
        await self.registration.startup()
        self.phase = "serving"
        await self.server_send({"type": "lifespan.startup.complete"})
        message = await self.server_receive()
        if message["type"] == "lifespan.shutdown":
            await self.registration.shutdown()
            await self.server_send({"type": "lifespan.shutdown.complete"})
        self.phase = "done"

    async def _receive(self) -> Message:
        message = await self.server_receive()
        if message["type"] == "lifespan.startup":
            self.startup_read = True
        elif message["type"] == "lifespan.shutdown":
            self.phase = "done"
            await self.registration.shutdown()  # deregister before the app closes what it serves with
        return message

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            await self.registration.startup()
            self.phase = "serving"
        elif kind == "lifespan.startup.failed":
            self.phase = "failed"
        await self.server_send(message)

