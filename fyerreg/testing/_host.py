"""What the host tells about ports and processes: a free port, a port taken, a process's threads stopped."""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import List, Optional, Sequence

__all__ = ["fill_ports", "free_port", "port_in_use", "wait_for_threads"]


def free_port(host: str) -> int:
    """A port of ``host`` nobody listens on now."""
    return fill_ports(host, [None])[0]


def fill_ports(host: str, ports: Sequence[Optional[int]]) -> List[int]:
    """``ports`` with each None replaced by a port of ``host`` nobody listens on now, all different.

    (Ports asked for one at a time can come back equal: each is free again once asked.)
    """
    given = {port for port in ports if port is not None}
    held: List[socket.socket] = []
    try:
        while len(held) < list(ports).count(None):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            if sock.getsockname()[1] in given:
                sock.close()
                continue
            held.append(sock)
        chosen = iter(int(sock.getsockname()[1]) for sock in held)
        return [port if port is not None else next(chosen) for port in ports]
    finally:
        for sock in held:
            sock.close()


def port_in_use(host: str, port: int) -> bool:
    """True when binding ``host:port`` as etcd does (SO_REUSEADDR) fails: something listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def wait_for_threads(pid: int, *, stopped: bool, timeout: float = 5.0) -> None:
    """Wait until every thread of ``pid`` is stopped (``stopped``) or running again, at most ``timeout``."""
    # A signal reaches each thread of a process on its own: until every thread of etcd
    # has stopped, one of them may still answer a request.
    deadline = time.monotonic() + timeout
    task_dir = f"/proc/{pid}/task"
    while time.monotonic() < deadline:
        try:
            states = []
            for tid in os.listdir(task_dir):
                with open(f"{task_dir}/{tid}/stat", "rb") as f:
                    states.append(f.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t"))
        except OSError:
            return  # no /proc (not Linux) or the process is gone: nothing more to wait for
        if states and all(state == stopped for state in states):
            return
        time.sleep(0.005)
