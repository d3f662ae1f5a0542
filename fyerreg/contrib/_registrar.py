"""A process that keeps one instance registered for its parent (a gunicorn master).

Run as ``python -m fyerreg.contrib._registrar`` with a JSON config on stdin. It
registers once the address answers HTTP, and deregisters when it gets SIGTERM or
SIGINT, or when its parent dies. The parent itself never opens a gRPC channel, so
the workers it forks are safe to use gRPC (a child forked from a process with live
gRPC channels cannot reliably use gRPC at all).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Dict

from ._integration import build_registry
from .wsgi import ServiceRegistration

logger = logging.getLogger("fyerreg.contrib.gunicorn")

_PARENT_CHECK_INTERVAL = 0.5


def run(config: Dict[str, Any]) -> int:
    """Register per ``config`` until a termination signal or the parent's death; then deregister."""
    parent = os.getppid()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    registry = build_registry(config.pop("registry"))
    try:
        registration = ServiceRegistration(registry, config.pop("service"), config.pop("version"),
                                           ready_probe="http", deregister_at_exit=False, **config)
        registration.start()
        while not stop.wait(_PARENT_CHECK_INTERVAL):
            if os.getppid() != parent:
                logger.warning("the gunicorn master (pid %d) is gone; deregistering", parent)
                break
        registration.stop()
    finally:
        registry.close()
    return 0


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
