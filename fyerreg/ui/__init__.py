"""A live, read-only web dashboard of one registry namespace (what ``fyerreg ui`` serves).

:class:`Dashboard` follows every service of an :class:`~fyerreg.registry.etcd.EtcdRegistry`'s
namespace through subscriptions, keeps a bounded timeline of each one's changes, and
serves a page that shows them as they happen (server-sent events) with the lease time
left on each instance (read from etcd when a page asks, never on a timer).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

from ._events import Hub
from ._follow import Follower
from ._server import DashboardServer
from ._state import DEFAULT_HISTORY, Board

__all__ = ["Dashboard", "DEFAULT_HISTORY"]


class Dashboard:
    """The dashboard of ``registry`` on ``host:port`` (port 0: a free one); :meth:`start`, then :meth:`close`.

    ``token``: required on every request (None: no token; bind loopback only then, the
    command refuses anything else). ``history``: changes kept per service. The registry
    stays the caller's: :meth:`close` does not close it.
    """

    def __init__(self, registry: Any, *, host: str = "127.0.0.1", port: int = 0, token: Optional[str] = None,
                 history: int = DEFAULT_HISTORY, max_listeners: int = 32, queue_size: int = 256) -> None:
        self.registry = registry
        options = getattr(registry, "options", None)
        layout = getattr(registry, "_layout", None)
        about: Dict[str, Any] = {
            "namespace": getattr(options, "namespace", None),
            "layout": getattr(layout, "name", None),
            "leased": bool(getattr(layout, "leased", True)),
            # host:port only: endpoints never carry credentials (EtcdOptions refuses user:password@).
            "endpoints": [ep.netloc for ep in getattr(options, "endpoints", ())],
        }
        self.board = Board(Hub(queue_size=queue_size, max_listeners=max_listeners), history=history, about=about)
        self._follower = Follower(registry, self.board)
        self.server = DashboardServer(host, port, self.board, self.leases, token=token)
        self._started = False
        self._closed = False

    @property
    def port(self) -> int:
        """The port the dashboard listens on."""
        return self.server.port

    @property
    def url(self) -> str:
        """Where to open the dashboard (without any token)."""
        host = str(self.server.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Subscribe to every service there now (a RegistryError when etcd does not answer), then serve."""
        try:
            self._follower.start()
        except BaseException:
            self.close()
            raise
        self.server.start()
        self._started = True

    def leases(self, service: Optional[str]) -> Dict[str, Any]:
        """Seconds left on each instance's lease, read from etcd now, by service then ``version/id``.

        None for a record bound to no lease, -1 for a lease already gone. Empty for a
        registry that is not on etcd.
        """
        from ..registry.etcd import EtcdRegistry
        from ..registry.etcd.admin import lease_ttls, list_records

        out: Dict[str, Dict[str, Optional[int]]] = {}
        if isinstance(self.registry, EtcdRegistry):
            wait = self.registry.options.dial_timeout
            records = list_records(self.registry, service, timeout=wait)
            ttls = lease_ttls(self.registry, records, timeout=wait)
            for record in records:
                inst = record.instance
                out.setdefault(inst.service, {})[f"{inst.version}/{inst.id}"] = ttls.get(inst.key)
            if service is not None:
                out.setdefault(service, {})
        return {"time": time.time(), "services": out}

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving (every page's stream ends), end every subscription, join every thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self.server.close(timeout)
        self._follower.close(max(deadline - time.monotonic(), 0.05))

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
