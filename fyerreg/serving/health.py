"""Health-gated registration: a check run every ``interval`` seconds decides whether the instance is enabled.

:class:`HealthCheck` says what to run and how often; :class:`HealthMonitor` runs it in
a ``fyerreg-health-<service>`` thread, off the request path, and after ``failures``
consecutive failures tells the registration to advertise the instance ``DISABLED``,
after ``successes`` consecutive successes ``ENABLED`` again.
:func:`http_check` and :func:`command_check` are the checks of the CLI sidecar.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, List, Optional, Sequence, Union

from .._threads import join_thread, start_thread
from ..naming import Instance, Status

__all__ = ["HealthCheck", "HealthMonitor", "StatusGate", "as_health_check", "load_check", "http_check", "command_check"]

logger = logging.getLogger("fyerreg.serving.health")

MAX_HUNG_CHECKS = 3
"""Runs of a check that may hang at once: at that many, a tick counts as failed without starting another."""

Check = Callable[[], object]
"""A health check: healthy when it returns a truthy value; a falsy one, an exception or a timeout is a failure."""


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{field} must be > 0, got {value!r}")
    return float(value)


def _count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{field} must be >= 1, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """Run ``check`` every ``interval`` seconds, each run bounded by ``timeout``.

    ``failures`` consecutive failed runs disable the instance, ``successes`` consecutive
    good ones enable it again. ``check`` may also be ``"module:callable"``. Bad values
    raise TypeError or ValueError naming the field.
    """

    check: Union[Check, str]
    interval: float = 5.0
    timeout: float = 2.0
    failures: int = 3
    successes: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", load_check(self.check, field="health_check.check"))
        _number("health_check.interval", self.interval)
        _number("health_check.timeout", self.timeout)
        _count("health_check.failures", self.failures)
        _count("health_check.successes", self.successes)

    @property
    def call(self) -> Check:
        """The check as a callable."""
        check = self.check
        assert callable(check)
        return check


def load_check(value: Union[Check, str], *, field: str = "health_check") -> Check:
    """``value`` when it is callable; the callable named by ``"module:callable"`` otherwise."""
    if callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a callable or 'module:callable', got {type(value).__name__}")
    module, _, name = value.partition(":")
    if not module or not name:
        raise ValueError(f"{field} {value!r} must be 'module:callable'")
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{field} {value!r} is not callable")
    checked: Check = found
    return checked


def as_health_check(value: Union[HealthCheck, Check, str, None], **options: Any) -> Optional[HealthCheck]:
    """``value`` as a HealthCheck: a plain callable (or ``"module:callable"``) gets ``options`` or the defaults."""
    if value is None or isinstance(value, HealthCheck):
        return value
    given = {name: option for name, option in options.items() if option is not None}
    return HealthCheck(value, **given)


def http_check(url: str, timeout: float) -> Check:
    """Healthy when a GET of ``url`` answers 2xx within ``timeout`` seconds."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"health URL {url!r} must start with http:// or https://")

    def check() -> bool:
        request = urllib.request.Request(url, headers={"User-Agent": "fyerreg-health"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return 200 <= int(response.status) < 300
        except urllib.error.HTTPError:
            return False

    return check


def command_check(argv: Sequence[str], timeout: float) -> Check:
    """Healthy when ``argv`` (run without a shell) exits 0 within ``timeout`` seconds; killed at the timeout."""
    if not argv:
        raise ValueError("health command must not be empty")
    args = list(argv)

    def check() -> bool:
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    return check


class _Run:
    """One run of a check in a daemon thread of its own, so a hung check never blocks the monitor."""

    def __init__(self, check: Check, service: str, then: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.healthy = False
        self.error: Optional[BaseException] = None
        self._check = check
        self._then = then
        start_thread(f"health-check-{service}", self._call)

    def _call(self) -> None:
        try:
            self.healthy = bool(self._check())
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()
            self._then()


class HealthMonitor:
    """Runs ``health`` (when given) and, after each run or :meth:`wake`, calls ``sync()``.

    ``healthy`` is the verdict after ``failures`` / ``successes`` consecutive runs (True
    at first). ``sync`` returns False when it could not bring the registry in line (etcd
    down): it is called again after ``retry`` seconds (the check's interval when there is
    one). A run that outlives its ``timeout`` is a failure left to end in its own daemon
    thread; while :data:`MAX_HUNG_CHECKS` of them are, each tick counts as a failure
    without starting one more. ``failed`` / ``passed`` count the runs in a row.
    """

    def __init__(self, health: Optional[HealthCheck], service: str, sync: Callable[[], bool], *,
                 retry: float = 1.0) -> None:
        self.health = health
        self.service = service
        self.healthy = True
        self._sync = sync
        self._retry = health.interval if health is not None else retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.failed = 0
        self.passed = 0
        self._hung: List[_Run] = []
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the monitor's thread runs."""
        return self._thread is not None and not self._stop.is_set()

    def start(self) -> None:
        """Start the thread (idempotent; never again after :meth:`stop`)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = start_thread(f"health-{self.service}", self._loop)

    def wake(self) -> None:
        """Call ``sync()`` now (the desired status changed), without running the check early."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread and join it; True when it has ended (a hung check's own thread is left to end)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        return thread is None or join_thread(thread, timeout)

    def _loop(self) -> None:
        health = self.health
        next_run = time.monotonic() + health.interval if health is not None else None
        dirty = True
        while not self._stop.is_set():
            waits = [] if not dirty else [self._retry]
            if next_run is not None:
                waits.append(max(0.0, next_run - time.monotonic()))
            self._wake.wait(min(waits) if waits else None)
            self._wake.clear()
            if self._stop.is_set():
                break
            if health is not None and next_run is not None and time.monotonic() >= next_run:
                self._check_once(health)
                next_run = time.monotonic() + health.interval
            try:
                dirty = not self._sync()
            except Exception:
                logger.exception("applying the health of %s failed; retrying", self.service)
                dirty = True

    def _check_once(self, health: HealthCheck) -> None:
        self._hung = [run for run in self._hung if not run.done.is_set()]
        if len(self._hung) >= MAX_HUNG_CHECKS:
            self._record(False, f"{len(self._hung)} runs of the check are still hung")
            return
        run = _Run(health.call, self.service, self._wake.set)
        deadline = time.monotonic() + health.timeout
        # Woken by the run's end or by stop(): a stop never waits for a slow check. A wake
        # for a new status meanwhile is served by the sync that follows the check.
        while not run.done.is_set() and not self._stop.is_set() and time.monotonic() < deadline:
            self._wake.wait(deadline - time.monotonic())
            self._wake.clear()
        if self._stop.is_set():
            return
        if not run.done.is_set():
            self._hung.append(run)  # left to end in its own thread; its late answer is ignored
            self._record(False, f"the check did not return within {health.timeout:g}s")
        elif run.error is not None:
            self._record(False, f"the check raised {type(run.error).__name__}: {run.error}")
        else:
            self._record(run.healthy, "the check returned a false value")

    def _record(self, ok: bool, why: str) -> None:
        health = self.health
        assert health is not None
        if ok:
            self.failed, self.passed = 0, self.passed + 1
            if not self.healthy and self.passed >= health.successes:
                self.healthy = True
                logger.info("%s is healthy again after %d good checks: enabling it", self.service, self.passed,
                            extra={"service": self.service})
        else:
            self.passed, self.failed = 0, self.failed + 1
            if self.healthy and self.failed >= health.failures:
                self.healthy = False
                logger.warning("%s failed %d health checks in a row (%s): disabling it", self.service,
                               self.failed, why, extra={"service": self.service})


class StatusGate:
    """What the instance should advertise: ``DISABLED`` while in maintenance (from code or from its
    maintenance key) or unhealthy, ``ENABLED`` otherwise; ``intend(status)`` advertises it locally at once,
    ``apply(status)`` writes it (False: retry later).

    ``start()`` starts the health check's monitor, ``registered()`` the watch of the
    instance's maintenance key; ``stop()`` ends both.
    """

    def __init__(self, health: Optional[HealthCheck], service: str, apply: Callable[[Status], bool],
                 intend: Callable[[Status], None]) -> None:
        self.monitor = HealthMonitor(health, service, self._sync)
        self._intend = intend
        self.maintenance = False
        self.maintenance_key = False
        self._apply = apply
        self._watch: Any = None
        self._lock = threading.Lock()
        self._stopped = False

    def desired(self) -> Status:
        """The status the instance should advertise now."""
        if self.maintenance or self.maintenance_key or not self.monitor.healthy:
            return Status.DISABLED
        return Status.ENABLED

    def start(self) -> None:
        """Start running the health check, if there is one."""
        if self.monitor.health is not None:
            self.monitor.start()

    def set_maintenance(self, on: bool) -> None:
        """Maintenance from code: DISABLED while on, whatever the health says."""
        self.maintenance = bool(on)
        self._changed()

    def registered(self, registry: Any, instance: Instance, timeout: Optional[float]) -> None:
        """``instance`` was registered: watch its maintenance key (on registries that have such keys)
        and bring its record in line with :meth:`desired`."""
        from ..registry.kv._maintenance import watch_maintenance

        with self._lock:
            if self._stopped or self._watch is not None:
                return
            self._watch = watch_maintenance(registry, instance, self._on_key, read_timeout=timeout or 5.0)
        if self.monitor.running or self.desired() != Status.ENABLED:
            self._changed()

    def stop(self, timeout: float) -> None:
        """End the watch and the monitor (joined within ``timeout`` each)."""
        with self._lock:
            self._stopped = True
            watch = self._watch
        self.monitor.stop(timeout)
        if watch is not None:
            watch.stop(timeout)

    def _on_key(self, present: bool) -> None:
        if present != self.maintenance_key:
            logger.warning("%s: maintenance key %s; %s", self.monitor.service, "set" if present else "removed",
                           "disabling it" if present else "its health decides again",
                           extra={"service": self.monitor.service})
        self.maintenance_key = present
        self._changed()

    def _changed(self) -> None:
        with self._lock:
            if self._stopped:
                return
        self._intend(self.desired())  # at once, for readers of the status; the monitor writes it
        self.monitor.start()  # retries a failed write on its next tick
        self.monitor.wake()

    def _sync(self) -> bool:
        return self._apply(self.desired())
