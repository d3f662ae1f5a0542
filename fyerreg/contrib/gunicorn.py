"""gunicorn hooks: one registration per gunicorn master (not one per worker), removed first on shutdown.

In ``gunicorn.conf.py``::

    from fyerreg.contrib.gunicorn import GunicornRegistration

    fyerreg = GunicornRegistration("user-service", "1.0.0", registry={"endpoints": ["etcd:2379"]})
    when_ready = fyerreg.when_ready
    on_exit = fyerreg.on_exit
    post_worker_init = fyerreg.post_worker_init  # with probes=True: /healthz and /readyz

``registry`` is a dict of ``EtcdRegistry`` options or ``"module:factory"``; the options a
dict does not give come from the ``FYERREG_*`` environment variables (the registrar
inherits the master's environment: :mod:`fyerreg.config`), checked in the config file.
``health_check`` gates the advertised status: a path (``"/healthz"``: healthy when a GET
of it on the bound address answers 2xx) or ``"module:callable"`` (called in the registrar
process, not in a worker), run every ``health_interval`` seconds within
``health_timeout``; ``health_failures`` failures disable the instance,
``health_successes`` successes enable it again.

How it works, and why: gunicorn forks its workers from the master, at start and again
whenever one is replaced. gRPC is not fork-safe: a process forked while its parent
holds live gRPC channels and threads cannot reliably use gRPC at all (we measured
failed connections, hangs and aborts in such children). So the master never opens a
channel. ``when_ready`` starts a small registrar process (``fyerreg.contrib._registrar``,
a fresh interpreter, not a fork) that registers the bound address once a worker answers
HTTP on it, and keeps the lease alive (while etcd does not answer, it retries with backoff
and the app serves meanwhile). On SIGTERM, SIGINT or SIGQUIT the master tells
the registrar to deregister and waits for it (including its ``drain_delay``) *before*
gunicorn closes its listeners and stops the workers. If the master is killed, the
registrar notices within a second and deregisters. Workers build their own registry
when their app needs discovery (``fyerreg.contrib.flask``/``django`` do so lazily, and
stand down from registering because the master does).

Probes (``probes=True``): the registration lives in the registrar, the requests reach the
workers. The registrar answers the two probes on a unix socket in a private temporary
directory made by the master (``fyerreg.contrib._probe_relay``); ``post_worker_init``
wraps each worker's WSGI app in :class:`~fyerreg.serving.http_probes.WSGIProbes` asking it.
So ``/readyz`` fails in every worker from the registrar's first step on SIGTERM, and the
record is removed ``unready_delay`` seconds later, before gunicorn closes its listeners.
A Flask or Django app with ``PROBES`` under such a master answers the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional, Union

from ..naming import DEFAULT_WEIGHT
from ..serving.address import join_host_port
from ..serving.health import HealthCheck
from ..serving.probes import DEFAULT_HEALTHZ_PATH, DEFAULT_READYZ_PATH, DEFAULT_UNREADY_DELAY, check_path
from ..serving.spec import DEFAULT_DRAIN_DELAY, InstanceSpec
from ._integration import check_registry_source, registered_by_server
from ._probe_relay import ProbeDirectory, RegistrarProbes

__all__ = ["GunicornRegistration"]

logger = logging.getLogger("fyerreg.contrib.gunicorn")


class GunicornRegistration:
    """Hooks for ``gunicorn.conf.py``: ``when_ready`` and ``on_exit`` (both run in the master).

    With ``probes`` the workers answer ``healthz_path`` and ``readyz_path`` (hook
    ``post_worker_init``) from the registrar's registration, and a stop waits
    ``unready_delay`` seconds (default 1 s) between "readiness fails" and the
    deregistration; ``stop_timeout`` must cover it and the ``drain_delay``.
    """

    def __init__(
        self,
        service: str,
        version: str = "1.0.0",
        *,
        registry: Union[str, Mapping[str, Any], None] = None,
        advertise_address: Optional[str] = None,
        instance_id: Optional[str] = None,
        weight: int = DEFAULT_WEIGHT,
        metadata: Optional[Mapping[str, str]] = None,
        drain_delay: float = DEFAULT_DRAIN_DELAY,
        ready_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        # Kubernetes probes
        probes: bool = False,
        healthz_path: str = DEFAULT_HEALTHZ_PATH,
        readyz_path: str = DEFAULT_READYZ_PATH,
        unready_delay: Optional[float] = None,
        health_check: Optional[str] = None,
        health_interval: float = 5.0,
        health_timeout: float = 2.0,
        health_failures: int = 3,
        health_successes: int = 2,
    ) -> None:
        source: Union[str, Dict[str, Any]] = dict(registry or {}) if not isinstance(registry, str) else registry
        if isinstance(source, str) and ":" not in source:
            raise ValueError(f"registry {source!r} must be 'module:factory' or a dict of EtcdRegistry options")
        check_registry_source(source)  # a malformed FYERREG_* variable fails in the master, not the registrar
        if ready_timeout <= 0 or stop_timeout <= 0:
            raise ValueError("ready_timeout and stop_timeout must be > 0")
        # The address is gunicorn's bound one, known in when_ready.
        self.spec = InstanceSpec(service, version, advertise_address=advertise_address, instance_id=instance_id,
                                 weight=weight, metadata=metadata or {}, drain_delay=drain_delay)
        self.spec.validate()
        self.service = service
        self.version = version
        self.stop_timeout = stop_timeout
        self._config: Dict[str, Any] = {"registry": source, "spec": dataclasses.asdict(self.spec),
                                        "ready_timeout": ready_timeout}
        self.probes: Optional[RegistrarProbes] = None
        """What the workers' probes ask (None without ``probes``)."""
        self.healthz_path = check_path("healthz_path", healthz_path)
        self.readyz_path = check_path("readyz_path", readyz_path)
        self._probe_dir: Optional[ProbeDirectory] = None
        if probes:
            unready = DEFAULT_UNREADY_DELAY if unready_delay is None else unready_delay
            if not unready >= 0:
                raise ValueError(f"unready_delay must be >= 0, got {unready_delay!r}")
            self._probe_dir = ProbeDirectory()
            self._config.update(probe_socket=self._probe_dir.socket_path, unready_delay=unready)
            self.probes = RegistrarProbes(self._probe_dir.socket_path)
        if health_check is not None:
            if not isinstance(health_check, str) or not (health_check.startswith("/") or ":" in health_check):
                raise ValueError(f"health_check {health_check!r} must be a path such as '/healthz' or "
                                 "'module:callable'")
            health = {"interval": health_interval, "timeout": health_timeout, "failures": health_failures,
                      "successes": health_successes}
            HealthCheck(bool, **health)  # type: ignore[arg-type]  # the options fail here, each named
            self._config["health"] = {"check": health_check, **health}
        json.dumps(self._config)  # fail now, in the config file, if an option cannot reach the registrar
        self.registrar: Optional[subprocess.Popen[bytes]] = None
        registered_by_server("the gunicorn master", probes=self.probes)

    def post_worker_init(self, worker: Any) -> None:
        """gunicorn ``post_worker_init`` hook (in each worker): serve the probes, when ``probes`` is on."""
        if self.probes is None:
            return
        from ..serving.http_probes import ASGIProbes, WSGIProbes

        app = worker.wsgi
        # uvicorn's gunicorn worker holds an ASGI app there (the registrar answers within a millisecond).
        asgi = inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__)
        wrap = ASGIProbes if asgi else WSGIProbes
        worker.wsgi = wrap(app, self.probes, healthz_path=self.healthz_path, readyz_path=self.readyz_path)

    def when_ready(self, server: Any) -> None:
        """gunicorn ``when_ready`` hook: start the registrar for the bound address."""
        if self.registrar is not None:
            return
        address = _bound_address(server)
        config = {**self._config, "spec": {**self._config["spec"], "address": address}}
        proc = subprocess.Popen([sys.executable, "-m", "fyerreg.contrib._registrar"], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode() + b"\n")
        proc.stdin.close()
        self.registrar = proc
        logger.info("registrar pid %d registers %s %s at %s once a worker answers", proc.pid, self.service,
                    self.version, address, extra={"service": self.service, "version": self.version})
        original_stop = server.stop

        def stop(graceful: bool = True) -> None:
            self.deregister()
            original_stop(graceful)

        # gunicorn closes its listeners first thing in Arbiter.stop(); deregister before that.
        server.stop = stop

    def on_exit(self, server: Any) -> None:
        """gunicorn ``on_exit`` hook: make sure the instance is deregistered."""
        self.deregister()
        if self._probe_dir is not None:
            self._probe_dir.remove()

    def deregister(self) -> None:
        """Have the registrar deregister (waiting ``drain_delay``) and wait for it to end. Idempotent."""
        proc, self.registrar = self.registrar, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("registrar pid %d did not finish within %.0fs; killing it (the lease will expire)",
                           proc.pid, self.stop_timeout, extra={"service": self.service})
            proc.kill()
            proc.wait(5)


def _bound_address(server: Any) -> str:
    for listener in getattr(server, "LISTENERS", []):
        name = listener.sock.getsockname() if hasattr(listener, "sock") else None
        if isinstance(name, tuple):
            return join_host_port(str(name[0]), int(name[1]))
    for bind in server.cfg.bind:
        if not bind.startswith(("unix:", "fd://")):
            return str(bind)
    raise ValueError("gunicorn is not bound to a TCP address; fyerreg cannot advertise a unix socket")
