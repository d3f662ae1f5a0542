"""What one heartbeat cannot cost less than, measured in a child process beside the idle figures.

Two parts of a fyerreg heartbeat are set by the design and by gRPC, not by fyerreg's code:

- *the thread*: each instance's keepalive thread wakes once per heartbeat. Measured with as
  many threads as registrations, waking on the same one-second grid at the same interval
  (fyerreg's ``heartbeat_wait``) and doing nothing else.
- *the renewal*: one LeaseKeepAliveRequest out and its answer back through gRPC Python.
  Measured with every lease renewed on one keepalive stream from one thread, as many
  renewals a second as the registrations make, each second's sent together (the cheapest
  way gRPC Python offers: no thread per instance, nothing but the renewals).

Each window is measured like the idle figures (``getrusage``, every thread of the process).
"""

from __future__ import annotations

import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Dict, List

from fyerreg.registry.etcd._stream import RequestSide
from fyerreg.registry.kv._keepalives import heartbeat_wait
from fyerreg.testing import raw_client

from ._scale_worker import idle_window

__all__ = ["heartbeat_floors"]


def _thread_floor(count: int, interval: float, window: float, etcd_pid: Any) -> Dict[str, float]:
    stops = [threading.Event() for _ in range(count)]

    def beat(stop: threading.Event) -> None:
        while not stop.wait(heartbeat_wait(interval)):
            pass

    threads = [threading.Thread(target=beat, args=(stop,), name=f"bench-beat-{n}", daemon=True)
               for n, stop in enumerate(stops)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(interval + 1.0)
        return idle_window(window, etcd_pid)
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(5.0)


def _renewal_floor(endpoints: List[str], count: int, interval: float, window: float,
                   etcd_pid: Any) -> Dict[str, float]:
    from pyetcd import etcdrpc

    client: Any = raw_client(endpoints, timeout=30.0)
    stub = client.leasestub
    ttl = int(interval * 3)
    leases = [int(stub.LeaseGrant(etcdrpc.LeaseGrantRequest(TTL=ttl), timeout=10.0).ID) for _ in range(count)]
    requests = RequestSide()
    call = stub.LeaseKeepAlive(iter(requests))
    answered = [0]
    failed: List[str] = []

    def read() -> None:
        try:
            for _ in call:
                answered[0] += 1
        except Exception as exc:  # cancelled at the end, or etcd failed: reported below
            failed.append(str(exc))

    reader = threading.Thread(target=read, name="bench-keepalive-reader", daemon=True)
    reader.start()
    stop = threading.Event()
    groups = max(1, round(interval))

    def send() -> None:
        tick = 0
        while not stop.wait(heartbeat_wait(1.0)):
            for lease in leases[tick % groups::groups]:
                requests.put(etcdrpc.LeaseKeepAliveRequest(ID=lease))
            tick += 1

    sender = threading.Thread(target=send, name="bench-keepalive-sender", daemon=True)
    sender.start()
    try:
        time.sleep(interval + 1.0)
        before = answered[0]
        point = idle_window(window, etcd_pid)
        point["renewals"] = float(answered[0] - before)
        point["failed"] = float(bool(failed))
        return point
    finally:
        stop.set()
        sender.join(5.0)
        requests.close()
        call.cancel()
        reader.join(5.0)
        for lease in leases:
            try:
                stub.LeaseRevoke(etcdrpc.LeaseRevokeRequest(ID=lease), timeout=5.0)
            except Exception:
                pass
        client.close()


def heartbeat_floors(conn: Connection, endpoints: List[str], count: int, interval: float, window: float,
                     etcd_pid: Any) -> None:
    """Send ``{"base": ..., "thread": ..., "renewal": ...}``: idle windows with nothing, with ``count``
    threads waking every ``interval`` seconds, and with ``count`` leases renewed every ``interval``."""
    result = {"base": idle_window(min(window, 2.0), etcd_pid),
              "thread": _thread_floor(count, interval, window, etcd_pid),
              "renewal": _renewal_floor(endpoints, count, interval, window, etcd_pid)}
    conn.send(result)
