"""gunicorn hooks: the master registers the instance once (not once per worker) and deregisters first on shutdown.

In ``gunicorn.conf.py``::

    from fyerreg.contrib.gunicorn import GunicornRegistration
    from fyerreg.registry.etcd import EtcdRegistry

    fyerreg = GunicornRegistration(lambda: EtcdRegistry(endpoints=["etcd:2379"]), "user-service", "1.0.0")
    when_ready = fyerreg.when_ready
    on_exit = fyerreg.on_exit

The master builds the registry (pass a factory so that happens in the master, after
gunicorn daemonized) and registers as soon as a worker answers HTTP on the bound
address. On SIGTERM, SIGINT or SIGQUIT it deregisters and waits ``drain_delay``
*before* gunicorn closes its listeners and stops the workers. Workers never use the
master's registry: they are forked after it started, so they inherit neither its
threads nor (usefully) its gRPC channel, and nothing they do at exit deregisters the
master's instance. An app in a worker that needs discovery builds its own registry
there (``fyerreg.contrib.flask``/``django`` do so lazily, and stand down from
registering since the master does).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping, Optional

from ..api._address import join_host_port
from ..naming import DEFAULT_WEIGHT
from ..registry.base import Registry
from ._integration import RegistrySource, registered_by_server
from .wsgi import ServiceRegistration

__all__ = ["GunicornRegistration"]

logger = logging.getLogger("fyerreg.contrib.gunicorn")


class GunicornRegistration:
    """Hooks for ``gunicorn.conf.py``: ``when_ready`` and ``on_exit`` (both run in the master)."""

    def __init__(
        self,
        registry: RegistrySource,
        service: str,
        version: str = "1.0.0",
        *,
        advertise_address: Optional[str] = None,
        instance_id: Optional[str] = None,
        weight: int = DEFAULT_WEIGHT,
        metadata: Optional[Mapping[str, str]] = None,
        drain_delay: float = 1.0,
        ready_timeout: float = 60.0,
        timeout: Optional[float] = None,
    ) -> None:
        if registry is None or not (isinstance(registry, Registry) or callable(registry)):
            raise TypeError("registry must be a Registry or a callable returning one")
        self._source = registry
        self._options = {"advertise_address": advertise_address, "instance_id": instance_id, "weight": weight,
                         "metadata": metadata, "drain_delay": drain_delay, "ready_timeout": ready_timeout,
                         "timeout": timeout}
        self.service = service
        self.version = version
        self.registry: Optional[Registry] = None
        self.registration: Optional[ServiceRegistration] = None
        self._lock = threading.Lock()
        registered_by_server("the gunicorn master")

    def when_ready(self, server: Any) -> None:
        """gunicorn ``when_ready`` hook: start registering the bound address once a worker answers."""
        address = _bound_address(server)
        registry = self._source if isinstance(self._source, Registry) else self._source()
        if not isinstance(registry, Registry):
            raise TypeError(f"the registry factory returned {type(registry).__name__}, not a Registry")
        self.registry = registry
        self.registration = ServiceRegistration(
            registry, self.service, self.version, address=address, ready_probe="http",
            deregister_at_exit=False, **self._options,  # type: ignore[arg-type]
        )
        self.registration.start()
        original_stop = server.stop

        def stop(graceful: bool = True) -> None:
            self._deregister()
            original_stop(graceful)

        # gunicorn closes its listeners first thing in Arbiter.stop(); deregister before that.
        server.stop = stop

    def on_exit(self, server: Any) -> None:
        """gunicorn ``on_exit`` hook: make sure the instance is gone and close the registry."""
        self._deregister()
        with self._lock:
            registry, self.registry = self.registry, None
        if registry is not None and registry is not self._source:
            registry.close()

    def _deregister(self) -> None:
        with self._lock:
            registration, self.registration = self.registration, None
        if registration is not None:
            registration.stop()


def _bound_address(server: Any) -> str:
    for listener in getattr(server, "LISTENERS", []):
        name = listener.sock.getsockname() if hasattr(listener, "sock") else None
        if isinstance(name, tuple):
            return join_host_port(str(name[0]), int(name[1]))
    for bind in server.cfg.bind:
        if not bind.startswith(("unix:", "fd://")):
            return str(bind)
    raise ValueError("gunicorn is not bound to a TCP address; fyerreg cannot advertise a unix socket")
