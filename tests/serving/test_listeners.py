"""serving.listeners: the TCP sockets this process listens on, and the one a server starts listening on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

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
        assert (server.fileno(), "127.0.0.1", server.getsockname()[1], False) in found  # no loop watches it
        ports = {port for _, _, port, _ in found}
        assert bound.getsockname()[1] not in ports and udp.getsockname()[1] not in ports
        assert open_fds() == fds, "looking at the sockets left a descriptor open"
        bound.listen()
        assert (bound.fileno(), "127.0.0.1", bound.getsockname()[1], False) in listening()


def serve_in_a_loop(sock: socket.socket, stop: threading.Event) -> threading.Thread:
    """Serve ``sock`` with an asyncio server in a thread of its own until ``stop``, as uvicorn would."""
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, sock=sock)
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    return thread


@pytest.mark.parametrize("listens_before", [False, True], ids=["bound", "already-listening"])
def test_the_socket_an_event_loop_starts_serving_is_the_one_found(listens_before: bool) -> None:
    # already-listening: a uvicorn worker given the socket another worker already serves.
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as unrelated, socket.socket() as served:
        served.bind(("0.0.0.0", 0))
        if listens_before:
            served.listen()
        port = served.getsockname()[1]
        before = listening()
        thread = serve_in_a_loop(served, stop)  # the same descriptor: only being served makes it new
        try:
            found = wait_for_new_listener(before, timeout=10)
        finally:
            stop.set()
            thread.join(10)
        assert found is not None and found == ("0.0.0.0", port)
        assert unrelated.getsockname()[1] != found[1]


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
