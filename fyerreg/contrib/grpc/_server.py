"""Registering a started ``grpc.server`` / ``grpc.aio.server``, with the standard health service."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Optional, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ...naming import Instance, Status
from ...registry.base import Registry
from ...serving import InstanceSpec, ServingRegistration
from ...serving.health import as_health_check
from ._status import ENDPOINT

__all__ = ["ServerRegistration", "AsyncServerRegistration"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEFAULT_GRACE = 5.0


class _Base:
    def __init__(self, server: Any, registry: Registry, spec: InstanceSpec, *, grace: float,
                 health_services: Sequence[str], timeout: Optional[float], deregister_timeout: Optional[float],
                 deregister_at_exit: bool, servicer: Any, health_check: Any = None,
                 unready_delay: float = 0.0) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a fyerreg Registry, got {type(registry).__name__}")
        if not isinstance(spec, InstanceSpec):
            raise TypeError(f"spec must be an InstanceSpec, got {type(spec).__name__}")
        if isinstance(health_services, str):
            raise TypeError("health_services must be a sequence of gRPC service names, not a str")
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0, got {grace!r}")
        self.server = server
        self.registry = registry
        self.spec = spec
        self.grace = grace
        self.health = servicer
        """The ``grpc.health.v1`` servicer: NOT_SERVING until registered, SERVING while registered."""
        self.health_services = ("", *health_services)
        self._timeout = timeout
        self._deregister_timeout = deregister_timeout
        self._at_exit = deregister_at_exit
        self._health_check = as_health_check(health_check)
        if not unready_delay >= 0:
            raise ValueError(f"unready_delay must be >= 0, got {unready_delay!r}")
        self._unready_delay = unready_delay
        self.registration: Optional[ServingRegistration] = None
        """The serving registration, once :meth:`start` made it."""
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    def _lifecycle(self, port: Optional[int], **hooks: Any) -> ServingRegistration:
        self.registration = ServingRegistration(self.registry, _grpc_spec(self.spec, port), bound_port=port,
                                                timeout=self._timeout, deregister_timeout=self._deregister_timeout,
                                                deregister_at_exit=self._at_exit, health_check=self._health_check,
                                                unready_delay=self._unready_delay, **hooks)
        self.registration.add_status_listener(self._status_changed)
        return self.registration

    def _serving(self, instance: Instance) -> None:
        self._status_changed(instance.status)

    def _status_changed(self, status: Status) -> None:
        """A disabled instance says NOT_SERVING on ``grpc.health.v1`` too; enabled, SERVING again."""
        self._set_health(SERVING if status == Status.ENABLED else NOT_SERVING)

    def _set_health(self, state: Any) -> None:
        for name in self.health_services:
            self.health.set(name, state)  # ignored once shutdown has begun

    @property
    def registered(self) -> bool:
        """True while the server's instance is registered."""
        return self.registration is not None and self.registration.registered

    @property
    def instance(self) -> Optional[Instance]:
        """The instance registered (None before :meth:`start`)."""
        return self.registration.instance if self.registration is not None else None

    def wait_registered(self, timeout: Optional[float] = None) -> bool:
        """Block until the registration succeeded or gave up; True when registered (never on an event loop)."""
        return self.registration is not None and self.registration.wait_registered(timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.service} registered={self.registered}>"


class ServerRegistration(_Base):
    """Keeps a ``grpc.server`` registered while it serves, with ``grpc.health.v1`` saying so.

    Make it before ``server.start()`` (it adds the health service to ``server``), then
    call :meth:`start` once the server has started, with the port ``add_insecure_port``
    (or ``add_secure_port``) returned when the spec's address has port 0. The instance
    is registered as soon as the port accepts connections; its health (the overall
    ``""`` and each of ``health_services``) turns SERVING then. :meth:`stop` (or a
    handled SIGTERM/SIGINT, before its previous effect) turns it NOT_SERVING, deregisters,
    waits the spec's ``drain_delay``, then stops the server with ``grace`` seconds for
    the calls in flight; ``unready_delay`` seconds between NOT_SERVING and the deregistration
    (default 0) let a load balancer's gRPC health check see it first. While ``health_check``
    (or maintenance) disables the instance, the health service says NOT_SERVING. The other options are
    :class:`~fyerreg.serving.ServingRegistration`'s.
    """

    def __init__(self, server: grpc.Server, registry: Registry, spec: InstanceSpec, *, grace: float = DEFAULT_GRACE,
                 health_services: Sequence[str] = (), handle_signals: bool = False, deregister_at_exit: bool = True,
                 timeout: Optional[float] = None, deregister_timeout: Optional[float] = None,
                 health_check: Any = None, unready_delay: float = 0.0) -> None:
        super().__init__(server, registry, spec, grace=grace, health_services=health_services, timeout=timeout,
                         deregister_timeout=deregister_timeout, deregister_at_exit=deregister_at_exit,
                         health_check=health_check, unready_delay=unready_delay,
                         servicer=health.HealthServicer(experimental_non_blocking=True))
        self._handle_signals = handle_signals
        self._stop_grace = grace
        for name in self.health_services:
            self.health.set(name, NOT_SERVING)

    def start(self, port: Optional[int] = None) -> None:
        """Register the started server (``port``: the one bound, when the spec's port is 0). Idempotent."""
        if self.registration is None:
            self._lifecycle(port, handle_signals=self._handle_signals, on_registered=self._serving,
                            on_stop=self.health.enter_graceful_shutdown, after_stop=self._stop_server)
        assert self.registration is not None
        self.registration.start()

    def stop(self, grace: Optional[float] = None) -> None:
        """NOT_SERVING, deregister, drain, then ``server.stop(grace)`` (default: the constructor's). Idempotent."""
        self._stop_grace = self.grace if grace is None else grace
        if self.registration is None:
            self.health.enter_graceful_shutdown()
            self._stop_server()
        else:
            self.registration.stop()

    def _stop_server(self) -> None:
        self.server.stop(self._stop_grace).wait(self._stop_grace + 5.0)

    def __enter__(self) -> ServerRegistration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AsyncServerRegistration(_Base):
    """:class:`ServerRegistration` for a ``grpc.aio.server``: the same lifecycle, with every
    registry call in a thread of its own, never on the event loop.

    ``await start(port)`` after ``await server.start()``; ``await stop()``. With
    ``handle_signals`` a SIGTERM/SIGINT runs :meth:`stop` on the loop, after which the
    server's ``wait_for_termination()`` returns.
    """

    def __init__(self, server: Any, registry: Registry, spec: InstanceSpec, *, grace: float = DEFAULT_GRACE,
                 health_services: Sequence[str] = (), handle_signals: bool = False, deregister_at_exit: bool = True,
                 timeout: Optional[float] = None, deregister_timeout: Optional[float] = None,
                 health_check: Any = None, unready_delay: float = 0.0) -> None:
        super().__init__(server, registry, spec, grace=grace, health_services=health_services, timeout=timeout,
                         deregister_timeout=deregister_timeout, deregister_at_exit=deregister_at_exit,
                         health_check=health_check, unready_delay=unready_delay,
                         servicer=_AsyncHealth(("", *health_services)))
        self._handle_signals = handle_signals
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Task[None]] = None

    async def start(self, port: Optional[int] = None) -> None:
        """Register the started server (``port``: the one bound, when the spec's port is 0). Idempotent."""
        if self.registration is not None:
            return
        self._loop = loop = asyncio.get_running_loop()
        self._lifecycle(port, on_registered=self._serving).start()  # registers in a thread of its own
        if self._handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal)

    async def stop(self, grace: Optional[float] = None) -> None:
        """NOT_SERVING, deregister, drain (in a thread), then ``await server.stop(grace)``. Idempotent."""
        await self.health.enter_graceful_shutdown()
        if self._loop is not None and self._handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._loop.remove_signal_handler(signum)
        if self.registration is not None:
            loop = asyncio.get_running_loop()
            drained = loop.create_future()

            def settle() -> None:
                if not drained.done():
                    drained.set_result(None)

            def then() -> None:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(settle)

            self.registration.stop_in_thread(then)  # deregister and drain in its thread, the loop serving on
            await drained
        await self.server.stop(self.grace if grace is None else grace)

    def _on_signal(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.stop())

    def _set_health(self, state: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def set_all() -> None:
            for name in self.health_services:
                await self.health.set(name, state)  # ignored once shutdown has begun

        asyncio.run_coroutine_threadsafe(set_all(), loop)

    async def __aenter__(self) -> AsyncServerRegistration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _AsyncHealth(health.aio.HealthServicer):  # type: ignore[misc]
    """The asyncio health servicer, NOT_SERVING from the start (its own default is SERVING, and its
    ``set()`` is a coroutine, which a constructor cannot await)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        for name in names:
            self._server_status[name] = NOT_SERVING  # no watcher can exist yet: nobody to notify


def _grpc_spec(spec: InstanceSpec, port: Optional[int]) -> InstanceSpec:
    """``spec``, naming its address the ``grpc`` endpoint when it names other endpoints but not that one.

    A spec naming no endpoints registers a plain instance: its address is where gRPC is
    served, and channels pick it by that address.
    """
    endpoints = dict(spec.endpoints)
    if not endpoints or ENDPOINT in endpoints:
        return spec
    return spec.replace(endpoints={**endpoints, ENDPOINT: spec.instance(port).address})
