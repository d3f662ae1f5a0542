"""gunicorn hooks: one registration per gunicorn master (not one per worker), removed first on shutdown.

In ``gunicorn.conf.py``::

    from fyerreg.contrib.gunicorn import GunicornRegistration

    fyerreg = GunicornRegistration("user-service", "1.0.0", registry={"endpoints": ["etcd:2379"]})
    when_ready = fyerreg.when_ready
    on_exit = fyerreg.on_exit

``registry`` is a dict of ``EtcdRegistry`` options or ``"module:factory"``; the options a
dict does not give come from the ``FYERREG_*`` environment variables (the registrar
inherits the master's environment: :mod:`fyerreg.config`), checked in the config file.

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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional, Union

from ..naming import DEFAULT_WEIGHT
from ..serving.address import join_host_port
from ..serving.spec import DEFAULT_DRAIN_DELAY, InstanceSpec
from ._integration import check_registry_source, registered_by_server

__all__ = ["GunicornRegistration"]

logger = logging.getLogger("fyerreg.contrib.gunicorn")


class GunicornRegistration:
    """Hooks for ``gunicorn.conf.py``: ``when_ready`` and ``on_exit`` (both run in the master)."""

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
        json.dumps(self._config)  # fail now, in the config file, if an option cannot reach the registrar
        self.registrar: Optional[subprocess.Popen[bytes]] = None
        registered_by_server("the gunicorn master")

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
