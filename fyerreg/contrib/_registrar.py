"""A process that keeps one instance registered for its parent (a gunicorn master).

Run as ``python -m fyerreg.contrib._registrar`` with a JSON config on stdin. It
connects to etcd (retrying with backoff while etcd does not answer: the app serves
meanwhile), registers once the address answers HTTP, and deregisters when it gets
SIGTERM or SIGINT, or when its parent dies. With a ``probe_socket`` it answers the
workers' ``/healthz`` and ``/readyz`` there (``fyerreg.contrib._probe_relay``). The
parent itself never opens a gRPC channel, so the workers it forks are safe to use gRPC
(a child forked from a process with live gRPC channels cannot reliably use gRPC at all).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from ..errors import RegistryUnavailableError
from ..registry.base import Registry
from ..retry import Retry
from ..serving import InstanceSpec, ServingRegistration
from ..serving.address import join_host_port
from ..serving.health import HealthCheck, http_check
from ..serving.probes import Probes
from ._integration import build_registry
from ._probe_relay import ProbeRelay

logger = logging.getLogger("fyerreg.contrib.gunicorn")

_PARENT_CHECK_INTERVAL = 0.5
_CONNECT_RETRY = Retry(max_tries=None, delay=0.5, backoff=2.0, max_delay=10.0)


class _Lifetime:
    """Until when the registrar runs: a termination signal or the death of its parent."""

    def __init__(self) -> None:
        self.parent = os.getppid()
        self.stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())

    def wait(self, seconds: Optional[float]) -> bool:
        """Wait up to ``seconds`` (None: for ever); True once it is time to end."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            left = _PARENT_CHECK_INTERVAL
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
            if left <= 0:
                return False
            if self.stop.wait(left):
                return True
            if os.getppid() != self.parent:
                logger.warning("the gunicorn master (pid %d) is gone; stopping", self.parent)
                return True


def connect(spec: Any, lifetime: _Lifetime) -> Optional[Registry]:
    """The registry of ``spec``, retried with backoff while etcd does not answer; None when told to end first."""
    attempt = 0
    while True:
        try:
            return build_registry(spec)
        except RegistryUnavailableError as exc:
            attempt += 1
            wait = _CONNECT_RETRY.wait_time(attempt)
            if attempt == 1:
                logger.warning("etcd does not answer (%s); the app serves, and is registered once etcd answers "
                               "(retrying with backoff up to every %.0fs)", exc, _CONNECT_RETRY.max_delay)
            else:
                logger.debug("etcd still does not answer (attempt %d): %s", attempt, exc)
        if lifetime.wait(wait):
            return None


def run(config: Dict[str, Any]) -> int:
    """Register per ``config`` until a termination signal or the parent's death; then deregister."""
    lifetime = _Lifetime()
    spec = InstanceSpec(**config["spec"])
    holder: List[ServingRegistration] = []
    relay = None
    if config.get("probe_socket"):
        # Answered from the start: "starting" while etcd does not answer yet.
        relay = ProbeRelay(config["probe_socket"], Probes(lambda: holder[0] if holder else None), name=spec.service)
    try:
        registry = connect(config.pop("registry"), lifetime)
        if registry is None:
            return 0
        try:
            registration = ServingRegistration(registry, spec, ready_probe="http",
                                               ready_timeout=config["ready_timeout"], deregister_at_exit=False,
                                               unready_delay=float(config.get("unready_delay", 0.0)),
                                               health_check=_health(spec, config.get("health")))
            holder.append(registration)
            registration.start()
            lifetime.wait(None)
            registration.stop()
        finally:
            registry.close()
    finally:
        if relay is not None:
            relay.close()
    return 0


def _health(spec: InstanceSpec, config: Optional[Dict[str, Any]]) -> Optional[HealthCheck]:
    """The health check of the config: a path is a GET on the bound address, else ``module:callable``."""
    if config is None:
        return None
    options = dict(config)
    check: Any = options.pop("check")
    if check.startswith("/"):
        host, port = spec.probe_address()
        check = http_check(f"http://{join_host_port(host, port)}{check}", options["timeout"])
    return HealthCheck(check, **options)


def main() -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [fyerreg] %(message)s"))
    root = logging.getLogger("fyerreg")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    config = json.loads(sys.stdin.readline())
    sys.stdin.close()
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
