"""Which TCP addresses this process listens on: how a server that bound port 0 is found from inside it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import FrozenSet, Iterable, List, Optional, Tuple

__all__ = ["listening", "wait_for_new_listener"]

logger = logging.getLogger("fyerreg.serving")

Listener = Tuple[int, str, int]
"""(file descriptor, host, port) of a listening socket."""

_SO_ACCEPTCONN: int = getattr(socket, "SO_ACCEPTCONN", 0)  # 0: this platform cannot tell


def listening() -> FrozenSet[Listener]:
    """Every TCP socket (IPv4 or IPv6) of this process that is listening now."""
    if not _SO_ACCEPTCONN:
        return frozenset()
    found = set()
    for fd in _open_fds():
        address = _listening_address(fd)
        if address is not None:
            found.add((fd, *address))
    return frozenset(found)


def wait_for_new_listener(before: FrozenSet[Listener], *, timeout: float,
                          stop: Optional[threading.Event] = None) -> Optional[Tuple[str, int]]:
    """The (host, port) of the first socket listening that was not in ``before``.

    None when none appears within ``timeout`` seconds or ``stop`` is set first. With
    several new ones, the lowest file descriptor (the first opened) wins.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    stop = stop or threading.Event()
    while not stop.is_set():
        new = sorted(listening() - before)
        if new:
            if len(new) > 1:
                logger.warning("several new listening sockets %s; taking the first", [n[1:] for n in new])
            return new[0][1], new[0][2]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        stop.wait(min(pause, left))
        pause = min(pause * 2, 0.2)
    return None


def _open_fds() -> Iterable[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names: List[str] = os.listdir(folder)
        except OSError:
            continue
        return sorted(int(name) for name in names if name.isdigit())
    return ()


def _listening_address(fd: int) -> Optional[Tuple[str, int]]:
    try:
        copy = os.dup(fd)  # a socket object of our own, so closing it leaves the server's open
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=copy)
    except OSError:  # not a socket
        os.close(copy)
        return None
    with sock:
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                return None
            if not sock.getsockopt(socket.SOL_SOCKET, _SO_ACCEPTCONN):
                return None
            host, port = sock.getsockname()[:2]
        except OSError:
            return None
    return str(host), int(port)
