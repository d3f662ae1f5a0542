"""Reading a socket against a deadline: a peer trickling bytes cannot stretch a bounded read."""

from __future__ import annotations

import io
import socket
import time
from typing import Any, Optional


class DeadlineReader(io.RawIOBase):
    """The bytes of ``sock``; every read ends by ``deadline`` (a ``time.monotonic()`` value).

    With ``deadline`` None, each read waits at most ``idle`` seconds instead (None: no
    bound). Both attributes may change between reads. A read past the deadline raises
    ``socket.timeout``. The socket stays open until this reader is closed too, as with
    ``socket.makefile``.
    """

    def __init__(self, sock: socket.socket, *, deadline: Optional[float] = None, idle: Optional[float] = None) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self.deadline = deadline
        self.idle = idle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        if self.deadline is None:
            self._sock.settimeout(self.idle)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline reached")
            self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def deadline_file(sock: socket.socket, *, deadline: Optional[float] = None, idle: Optional[float] = None,
                  buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> io.BufferedReader:
    """A buffered :class:`DeadlineReader` of ``sock`` (its ``.raw`` holds the deadline)."""
    return io.BufferedReader(DeadlineReader(sock, deadline=deadline, idle=idle), buffer_size)
