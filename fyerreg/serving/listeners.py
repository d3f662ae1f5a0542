"""Which TCP addresses this process listens on: how a server that bound port 0 is found from inside it.

A socket can be listening before this process serves it: ``uvicorn --workers N`` hands
every worker the socket its parent bound, and the first worker to serve makes it listen
for all. So on Linux a listener counts as served once some event loop of this process
watches it (its descriptor is in one of the process's epoll sets); elsewhere, once it
listens.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import FrozenSet, Iterable, List, Optional, Set, Tuple

__all__ = ["listening", "wait_for_new_listener"]

logger = logging.getLogger("fyerreg.serving")

Listener = Tuple[int, str, int, bool]
"""(file descriptor, host, port, watched by an event loop) of a listening socket."""

_SO_ACCEPTCONN: int = getattr(socket, "SO_ACCEPTCONN", 0)  # 0: this platform cannot tell


def listening() -> FrozenSet[Listener]:
    """Every TCP socket (IPv4 or IPv6) of this process that is listening now.

    Each is marked watched when an event loop of this process waits on it (always True
    where that cannot be told).
    """
    if not _SO_ACCEPTCONN:
        return frozenset()
    watched = _epoll_targets()
    found = set()
    for fd in _open_fds():
        address = _listening_address(fd)
        if address is not None:
            found.add((fd, address[0], address[1], watched is None or fd in watched))
    return frozenset(found)


def wait_for_new_listener(before: FrozenSet[Listener], *, timeout: float,
                          stop: Optional[threading.Event] = None) -> Optional[Tuple[str, int]]:
    """The (host, port) of the first socket listening and watched that was not so in ``before``.

    None when none appears within ``timeout`` seconds or ``stop`` is set first. With
    several new ones, the lowest file descriptor (the first opened) wins.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    stop = stop or threading.Event()
    while not stop.is_set():
        new = sorted(n for n in listening() - before if n[3])
        if new:
            if len(new) > 1:
                logger.warning("several new listening sockets %s; taking the first", [n[1:3] for n in new])
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


def _epoll_targets() -> Optional[Set[int]]:
    """The descriptors in this process's epoll sets (Linux); None where that cannot be read."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    targets: Set[int] = set()
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/self/fdinfo/{name}") as info:
                targets.update(int(line.split()[1]) for line in info if line.startswith("tfd:"))
        except (OSError, ValueError, IndexError):
            continue
    return targets


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
