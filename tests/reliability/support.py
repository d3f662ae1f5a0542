"""Helpers of the reliability tests."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, TypeVar

import grpc
import pyetcd

from fyerreg.testing import EtcdCluster, EtcdServer, raw_client

T = TypeVar("T")


def connected_member(cluster: EtcdCluster, registry: Any) -> EtcdServer:
    """The member ``registry``'s etcd connection uses right now (read from the backend's client)."""
    endpoint = registry._client.endpoint
    return next(m for m in cluster.members if m.endpoint == endpoint)


def knows_endpoint(registry: Any, endpoint: str) -> bool:
    """True when ``registry``'s client has ``endpoint`` among those it may fail over to."""
    return endpoint in registry._client._pool.netlocs()


def keys_under(endpoints: List[str], prefix: str, timeout: float = 10.0) -> List[str]:
    """The keys under ``prefix``, read from outside fyerreg, with ``prefix`` cut off, sorted.

    Retried while etcd answers "unavailable" (a leader election), up to ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    client = raw_client(endpoints, timeout=2.0)
    try:
        while True:
            try:
                return sorted(meta.key.decode()[len(prefix):] for _, meta in client.get_prefix(prefix))
            except (grpc.RpcError, pyetcd.Etcd3Exception, ValueError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.close()


class Background:
    """``func()`` running on a helper thread, started at construction."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self._outcome: List[Any] = []
        self._thread = threading.Thread(target=self._run, args=(func,), name="test-background", daemon=True)
        self._thread.start()

    def _run(self, func: Callable[[], Any]) -> None:
        try:
            self._outcome.append((True, func()))
        except BaseException as exc:
            self._outcome.append((False, exc))

    def result(self, within: float) -> Any:
        """What ``func`` returned (or raise what it raised); fail when it has not ended within ``within`` s."""
        self._thread.join(within)
        if self._thread.is_alive():
            raise AssertionError(f"the call hung: no answer within {within}s")
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return value
