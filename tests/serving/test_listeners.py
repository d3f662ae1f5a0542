"""serving.listeners: the TCP sockets this process listens on, and the one a server starts listening on."""

from __future__ import annotations

import os
import socket
import threading
import time

from fyerreg.serving.listeners import listening, wait_for_new_listener


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_listening_sockets_are_found_and_bound_or_udp_ones_are_not() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.socket() as bound, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        bound.bind(("127.0.0.1", 0))
        udp.bind(("127.0.0.1", 0))
        fds = open_fds()
        found = listening()
        assert (server.fileno(), "127.0.0.1", server.getsockname()[1]) in found
        ports = {port for _, _, port in found}
        assert bound.getsockname()[1] not in ports and udp.getsockname()[1] not in ports
        assert open_fds() == fds, "looking at the sockets left a descriptor open"
        bound.listen()
        assert (bound.fileno(), "127.0.0.1", bound.getsockname()[1]) in listening()


def test_the_socket_that_starts_listening_later_is_the_one_found() -> None:
    with socket.create_server(("127.0.0.1", 0)) as earlier, socket.socket() as later:
        later.bind(("0.0.0.0", 0))
        before = listening()
        timer = threading.Timer(0.2, later.listen)
        timer.start()
        try:
            assert wait_for_new_listener(before, timeout=10) == ("0.0.0.0", later.getsockname()[1])
        finally:
            timer.join()
        assert earlier.getsockname()[1] != later.getsockname()[1]


def test_waiting_ends_at_the_timeout_or_at_once_when_stopped() -> None:
    before = listening()
    began = time.monotonic()
    assert wait_for_new_listener(before, timeout=0.3) is None
    assert time.monotonic() - began < 0.3 + 1.5
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    began = time.monotonic()
    assert wait_for_new_listener(before, timeout=30, stop=stop) is None
    assert time.monotonic() - began < 5
