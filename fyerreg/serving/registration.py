"""``ServingRegistration``: the one lifecycle of a serving process's registration.

Register once the port is bound (and, optionally, answers), drain, deregister first:
``api.Server``, the WSGI/Flask/Django integrations, gunicorn's registrar and the CLI
sidecar all run it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import socket
import threading
import time
from typing import Callable, List, Optional, Tuple, Union

from .. import _fork, _signals
from .._log import instance_extra as _extra
from .._threads import join_thread, start_thread
from ..errors import RegistryClosedError, RegistryError
from ..naming import Instance, Status
from ..registry.base import Registry
from ..retry import Retry
from .health import Check, HealthCheck, StatusGate, as_health_check
from .spec import InstanceSpec

__all__ = ["ServingRegistration"]

logger = logging.getLogger("fyerreg.serving")

_REGISTER_RETRY = Retry(max_tries=None, delay=0.5, backoff=2.0, max_delay=10.0)
_STOP_WAIT = 3.0
"""Seconds stop() waits for a registration attempt in flight when no ``timeout`` is given."""


class ServingRegistration:
    """Keeps the instance of ``spec`` registered while the process serves.

    ``start()`` (or entering the ``with`` block) registers the instance: with
    ``wait_ready`` (the default) a background thread first waits until the address
    accepts connections (``ready_probe="connect"``) or answers an HTTP request
    (``"http"``: for servers whose socket accepts before a worker serves, like
    gunicorn's master), so no client is sent to a port that is not served yet, and
    retries the registration until it succeeds; without it ``start()`` registers once
    and raises the registry's error. ``stop()`` (or leaving the block) deregisters, then
    waits the spec's ``drain_delay`` so clients learn of it before the app stops serving;
    ``stop_in_thread()`` does so without blocking its caller (an event loop that serves on).
    With ``handle_signals`` SIGTERM/SIGINT deregister first and then take their previous
    effect. With ``deregister_at_exit`` the interpreter's exit deregisters too, in this
    process only (never in a forked child).

    ``bound_port`` is the port actually bound when the spec's address has port 0.
    ``timeout`` bounds each registry call (None: the registry's default) and how long
    ``stop()`` waits for a registration in flight; ``deregister_timeout`` (default
    ``timeout``) bounds the deregistration alone.

    Hooks for servers with more to do around the registration (the gRPC health
    service): ``on_registered(instance)`` runs once the instance is registered (in the
    registering thread), ``on_stop()`` first thing in :meth:`stop` (shutdown begins:
    before deregistering), ``after_stop()`` last (after the drain, before a handled
    signal takes its previous effect: stop the server there). An exception a hook
    raises is logged, never stops the lifecycle.

    Probes (:mod:`fyerreg.serving.probes`): :attr:`draining` is True from the first thing
    :meth:`stop` does, so a readiness probe fails at once; ``unready_delay`` seconds later
    (default 0: without probes nobody needs to see it) the instance is deregistered.

    ``health_check`` (a :class:`~fyerreg.serving.health.HealthCheck`, or a callable or
    ``"module:callable"`` with its defaults) gates the advertised status: after its
    ``failures`` consecutive failures the instance is set ``DISABLED`` in its record, after
    ``successes`` good runs ``ENABLED`` again. :meth:`maintenance` and the instance's
    maintenance key (``fyerreg maint``) disable it whatever the health says. A write that
    fails (etcd down) is retried at the next tick.
    """

    def __init__(
        self,
        registry: Registry,
        spec: InstanceSpec,
        *,
        bound_port: Optional[int] = None,
        wait_ready: bool = True,
        ready_probe: str = "connect",
        ready_timeout: float = 60.0,
        handle_signals: bool = False,
        deregister_at_exit: bool = True,
        timeout: Optional[float] = None,
        deregister_timeout: Optional[float] = None,
        on_registered: Optional[Callable[[Instance], None]] = None,
        on_stop: Optional[Callable[[], None]] = None,
        after_stop: Optional[Callable[[], None]] = None,
        # Kubernetes probes (fyerreg.serving.probes)
        unready_delay: float = 0.0,
        health_check: Union[HealthCheck, Check, str, None] = None,
    ) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a fyerreg Registry, got {type(registry).__name__}")
        if ready_probe not in ("connect", "http"):
            raise ValueError(f"ready_probe must be 'connect' or 'http', not {ready_probe!r}")
        if not ready_timeout > 0:
            raise ValueError(f"ready_timeout must be > 0, got {ready_timeout!r}")
        if not unready_delay >= 0:
            raise ValueError(f"unready_delay must be >= 0, got {unready_delay!r}")
        self.registry = registry
        self.spec = spec
        _fork.track(self)  # renews its locks in a forked child
        self.instance = spec.instance(bound_port)
        self.instance.validate()
        self._probe_address = spec.probe_address(bound_port)
        self._wait_ready = wait_ready
        self._ready_probe = ready_probe
        self._ready_timeout = ready_timeout
        self._handle_signals = handle_signals
        self._drain_delay = spec.drain_delay
        self._unready_delay = unready_delay
        self._draining = False
        self._at_exit = deregister_at_exit
        self._timeout = timeout
        self._deregister_timeout = timeout if deregister_timeout is None else deregister_timeout
        self._stop_wait = timeout if timeout is not None else _STOP_WAIT
        self._pid = os.getpid()
        # Guards the fields below, never held across a registry call; reentrant because a
        # signal handler may run stop() in a thread that holds it.
        self._lock = threading.RLock()
        self._attempt_owner: Optional[int] = None  # the thread inside registry.register(), if any
        self._attempt_idle = threading.Event()
        self._attempt_idle.set()
        self._abandoned = False  # stop() stopped waiting for an attempt in flight
        self._stop = threading.Event()
        self._done = threading.Event()
        self._registered = False
        self._started = False
        self._thread: Optional[threading.Thread] = None
        self._restore_signals: Callable[[], None] = _no_op
        self._stopper: Optional[threading.Thread] = None  # runs stop() for stop_in_thread()
        self._after_stop: List[Callable[[], None]] = []
        self._stopped_in_thread = False  # the stopper ran stop() and every callback given so far
        self._on_registered_hook = on_registered
        self._on_stop_hook = on_stop
        self._after_stop_hook = after_stop
        self.last_error: Optional[RegistryError] = None
        """The error of the last failed deregistration, if any."""
        # Health-gated status: the gate decides, _advertise writes.
        self._gate = StatusGate(as_health_check(health_check), self.instance.service, self._advertise, self._intend)
        self._status_written = True
        self._status_failing = False
        self._status_listeners: List[Callable[[Status], None]] = []

    @property
    def registered(self) -> bool:
        """True while the instance is registered by this object."""
        return self._registered

    @property
    def draining(self) -> bool:
        """True once :meth:`stop` has begun: the instance is leaving (readiness fails from then on)."""
        return self._draining

    @property
    def settled(self) -> bool:
        """True once the registration succeeded or gave up (what :meth:`wait_registered` waits for)."""
        return self._done.is_set()

    def wait_registered(self, timeout: Optional[float] = None) -> bool:
        """Block until the registration succeeded or gave up; True when registered."""
        self._done.wait(timeout)
        return self._registered

    def start(self) -> None:
        """Register now, or (with ``wait_ready``) as soon as the address answers. Idempotent."""
        with self._lock:
            if self._started:
                return
            self._started = True
        if self._at_exit:
            atexit.register(self._exit)
        if self._handle_signals:
            self._restore_signals = _signals.install(lambda signum: self.stop())
        self._gate.start()
        if self._wait_ready:
            self._thread = start_thread(f"register-{self.instance.service}", self._register_when_ready)
        else:
            try:
                self._register()
            finally:
                self._done.set()

    def stop(self, *, max_drain: Optional[float] = None) -> None:
        """Deregister, then wait ``drain_delay`` (at most ``max_drain``) so clients stop calling first. Idempotent.

        :attr:`draining` turns True first, and the deregistration waits ``unready_delay``
        after it (``max_drain`` bounds the two waits together).

        A registration attempt still in flight (etcd slow or hung) is waited for at most
        ``timeout`` seconds (3 s when None), never when ``stop()`` runs inside it (a signal
        handler): the attempt then deregisters itself if it completes, and if the process
        ends first its lease expires on its own. Only the process that started the
        registration deregisters; in a forked child this does nothing.
        """
        if os.getpid() != self._pid:
            return
        self._draining = True
        self._run_hook("on_stop", self._on_stop_hook)
        self._stop.set()
        self._gate.stop(self._stop_wait)
        deadline = time.monotonic() + self._stop_wait  # one bound for both waits below
        if threading.get_ident() != self._attempt_owner:
            self._attempt_idle.wait(self._stop_wait)
        with self._lock:
            in_flight = self._attempt_owner is not None
            self._abandoned = self._abandoned or in_flight
            was_registered, self._registered = self._registered, False
        if in_flight:
            logger.warning("registration of %s still in flight at stop; it is removed if it completes, "
                           "or its lease expires", self.instance.service, extra=_extra(self.instance))
        elif self._thread is not None:
            join_thread(self._thread, max(0.0, deadline - time.monotonic()))
        if was_registered:
            # Readiness already fails: give the probes of load balancers time to see it first.
            unready = self._unready_delay if max_drain is None else min(self._unready_delay, max_drain)
            time.sleep(unready)
            self._deregister()
            time.sleep(self._drain_delay if max_drain is None else min(self._drain_delay, max_drain - unready))
        self._run_hook("after_stop", self._after_stop_hook)
        self._restore_signals()
        if self._at_exit:
            atexit.unregister(self._exit)

    def stop_in_thread(self, then: Optional[Callable[[], None]] = None, *, max_drain: Optional[float] = None) -> None:
        """Run :meth:`stop` in a ``fyerreg-`` thread and return at once; ``then()`` runs when it has ended.

        For a caller that must keep serving during the drain (an event loop, a signal
        handler interrupting it). ``then`` runs in that thread, after the drain; a later call
        while it runs adds its ``then``, and one after it has ended calls ``then`` at once.
        """
        with self._lock:
            if self._stopper is None:
                self._stopper = start_thread(f"stop-{self.instance.service}", self._stop_then, max_drain)
            if not self._stopped_in_thread:
                if then is not None:
                    self._after_stop.append(then)
                return
        if then is not None:
            then()

    def _stop_then(self, max_drain: Optional[float]) -> None:
        try:
            self.stop(max_drain=max_drain)
        finally:
            while True:
                with self._lock:
                    if not self._after_stop:
                        self._stopped_in_thread = True
                        break
                    then = self._after_stop.pop(0)
                try:
                    then()
                except Exception:
                    logger.exception("a callback after the stop of %s failed", self.instance.service,
                                     extra=_extra(self.instance))

    def install_signal_handlers(self) -> None:
        """Handle SIGTERM/SIGINT (again), on top of handlers a server set after :meth:`start`.

        For servers that install their own handlers once the app is loaded (Django's
        autoreloader): the signal deregisters first, then takes the server's effect.
        """
        self._restore_signals()
        self._restore_signals = _signals.install(lambda signum: self.stop())

    def set_status(self, status: Status) -> None:
        """Advertise the instance as enabled or disabled (disabled instances get no new calls).

        With a health check (or maintenance) the status is theirs: their next run sets it
        again. Use :meth:`maintenance` to hold an instance disabled.
        """
        with self._lock:
            if not self._registered:
                raise RegistryClosedError(f"{self.instance.service} is not registered")
            self.instance = self.instance.replace(status=status)
            instance = self.instance
        self.registry.update_service(instance, timeout=self._timeout)

    def maintenance(self, on: bool) -> None:
        """Maintenance from code: ``DISABLED`` while on, whatever the health check says; off, the health decides."""
        self._gate.set_maintenance(on)

    @property
    def healthy(self) -> bool:
        """The health check's verdict (True without a check)."""
        return self._gate.monitor.healthy

    def add_status_listener(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener(status)`` each time the advertised status changes (in the thread changing it)."""
        self._status_listeners.append(listener)

    def _intend(self, status: Status) -> None:
        """Advertise ``status`` from now on (:attr:`instance`); the monitor writes it to the registry."""
        with self._lock:
            if not self._registered or self.instance.status == status:
                return
            self.instance = self.instance.replace(status=status)
            self._status_written = False
        for listener in list(self._status_listeners):
            self._run_hook("status listener", functools.partial(listener, status))

    def _advertise(self, status: Status) -> bool:
        """Advertise ``status``; False when the registry could not be told (tried again later)."""
        self._intend(status)
        with self._lock:
            if not self._registered or self._status_written:
                return True
            instance = self.instance
        try:
            self.registry.update_service(instance, timeout=self._timeout)
        except RegistryError as exc:
            if not self._status_failing:
                logger.warning("could not advertise %s as %s (%s); retrying", instance.service, status.name, exc,
                               extra=_extra(instance))
            self._status_failing = True
            return False
        with self._lock:
            self._status_written = self.instance == instance
        if self._status_failing:
            logger.info("%s advertised as %s", instance.service, status.name, extra=_extra(instance))
        self._status_failing = False
        return True

    def _deregister(self) -> None:
        try:
            self.registry.deregister(self.instance, timeout=self._deregister_timeout)
            self.last_error = None
            logger.info("deregistered %s %s at %s", self.instance.service, self.instance.version,
                        self.instance.address, extra=_extra(self.instance))
        except RegistryError as exc:
            self.last_error = exc
            logger.warning("deregistration of %s failed: %s", self.instance.service, exc,
                           extra=_extra(self.instance))

    def _exit(self) -> None:
        if os.getpid() == self._pid:
            self.stop()

    def _register(self) -> None:
        # No lock is held across the registry call: stop() (maybe from a signal handler
        # in this very thread) must never wait for it.
        # Each step is ordered so that a stop() run by a signal handler between any two
        # of them (in this thread) sees the attempt as in flight or finds it registered.
        with self._lock:
            self._attempt_owner = threading.get_ident()
            self._attempt_idle.clear()
            if self._stop.is_set():
                self._attempt_idle.set()
                self._attempt_owner = None
                return
        succeeded = False
        try:
            self.instance = self.instance.replace(status=self._gate.desired())
            self.registry.register(self.instance, timeout=self._timeout)
            succeeded = True
        finally:
            with self._lock:
                self._registered = succeeded and not self._abandoned
                self._attempt_idle.set()
                self._attempt_owner = None
                late = succeeded and self._abandoned
        if late:  # stop() gave up waiting for this attempt: undo it
            self._deregister()
            return
        logger.info("registered %s %s at %s", self.instance.service, self.instance.version, self.instance.address,
                    extra=_extra(self.instance))
        self._gate.registered(self.registry, self.instance, self._timeout)
        hook, instance = self._on_registered_hook, self.instance
        if hook is not None:
            self._run_hook("on_registered", lambda: hook(instance))

    def _run_hook(self, name: str, hook: Optional[Callable[[], None]]) -> None:
        if hook is None:
            return
        try:
            hook()
        except Exception:
            logger.exception("the %s hook of %s failed", name, self.instance.service, extra=_extra(self.instance))

    def _register_when_ready(self) -> None:
        try:
            if not self._wait_for_port():
                if not self._stop.is_set():
                    logger.error("%s:%d did not accept connections within %.0fs; %s is not registered",
                                 *self._probe_address, self._ready_timeout, self.instance.service,
                                 extra=_extra(self.instance))
                return
            _REGISTER_RETRY.call(self._register, retry_on=(RegistryError,), stop=self._stop,
                                 on_retry=self._log_retry)
        except RegistryError as exc:
            if not self._stop.is_set():
                logger.error("registration of %s failed: %s", self.instance.service, exc, extra=_extra(self.instance))
        finally:
            self._done.set()

    def _log_retry(self, attempt: int, exc: BaseException, wait: float) -> None:
        logger.warning("registration of %s failed (%s); retrying in %.1fs", self.instance.service, exc, wait,
                       extra={**_extra(self.instance), "attempt": str(attempt)})

    def _wait_for_port(self) -> bool:
        deadline = time.monotonic() + self._ready_timeout
        pause = 0.02
        while not self._stop.is_set():
            if _probe(self._probe_address, http=self._ready_probe == "http"):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(pause, left))
            pause = min(pause * 2, 0.5)
        return False

    def __enter__(self) -> ServingRegistration:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "registered" if self._registered else "not registered"
        return f"<{type(self).__name__} {self.instance.service} {self.instance.address} {state}>"


def _probe(address: Tuple[str, int], *, http: bool) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0) as conn:
            if not http:
                return True
            conn.sendall(b"HEAD / HTTP/1.0\r\nUser-Agent: fyerreg-ready-probe\r\n\r\n")
            return conn.recv(1) != b""
    except OSError:
        return False


def _no_op() -> None:
    pass
