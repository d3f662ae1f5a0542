"""contrib.asgi in one process: the lifespan protocol played as a server would, against a memory registry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional

import pytest
from fastapi import FastAPI

from fyerreg import Endpoint, Instance, MemoryRegistry
from fyerreg.contrib.asgi import ASGIRegistration, RegistrationMiddleware


class RecordingRegistry(MemoryRegistry):
    """A memory registry noting the thread of each registration call; ``hold`` blocks register()."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: List[str] = []
        self.hold = threading.Event()
        self.hold.set()

    def register(self, instance: Instance, timeout: Optional[float] = None) -> None:
        self.threads.append(threading.current_thread().name)
        self.hold.wait(10)
        super().register(instance, timeout=timeout)

    def deregister(self, instance: Instance, timeout: Optional[float] = None) -> None:
        self.threads.append(threading.current_thread().name)
        super().deregister(instance, timeout=timeout)


@pytest.fixture
def registry() -> Iterator[RecordingRegistry]:
    with RecordingRegistry() as reg:
        yield reg


@pytest.fixture
def server() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def listed(registry: MemoryRegistry, service: str = "app") -> List[str]:
    return [i.address for i in registry.list_services(service)]


def registration(registry: MemoryRegistry, port: Optional[int] = None, **options: Any) -> ASGIRegistration:
    address = None if port is None else f"127.0.0.1:{port}"
    return ASGIRegistration("app", registry=registry, address=address, drain_delay=0, handle_signals=False,
                            **options)


class LifespanServer:
    """The server's side of the ASGI lifespan protocol."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.scope: Dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.inbox: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        self.task: Optional[asyncio.Task[None]] = None

    async def _send(self, message: Dict[str, Any]) -> None:
        await self.outbox.put(message)

    async def startup(self) -> str:
        self.task = asyncio.ensure_future(self.app(self.scope, self.inbox.get, self._send))
        await self.inbox.put({"type": "lifespan.startup"})
        return str((await asyncio.wait_for(self.outbox.get(), 10))["type"])

    async def shutdown(self) -> str:
        await self.inbox.put({"type": "lifespan.shutdown"})
        answer = str((await asyncio.wait_for(self.outbox.get(), 10))["type"])
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        return answer


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s: {predicate}"
        await asyncio.sleep(0.01)


def test_the_wrapped_app_starts_before_the_registration_and_stops_after_the_deregistration(
        registry: RecordingRegistry, server: socket.socket) -> None:
    port = server.getsockname()[1]
    seen: List[Any] = []

    @contextlib.asynccontextmanager
    async def own(app: Any) -> AsyncIterator[Dict[str, str]]:
        seen.append(("started", listed(registry)))
        yield {"greeting": "Hello"}
        seen.append(("stopping", listed(registry)))

    async def main() -> None:
        lifespan = LifespanServer(RegistrationMiddleware(FastAPI(lifespan=own), registration(registry, port)))
        assert await lifespan.startup() == "lifespan.startup.complete"
        await wait_for(lambda: listed(registry))
        assert lifespan.scope["state"] == {"greeting": "Hello"}  # the app's state still reaches its requests
        assert await lifespan.shutdown() == "lifespan.shutdown.complete"

    asyncio.run(main())
    assert seen == [("started", []), ("stopping", [])]
    assert listed(registry) == []


@pytest.mark.parametrize("behaviour", ["raises", "returns", "raises after reading"])
def test_an_app_that_does_not_speak_lifespan_is_served_and_registered_all_the_same(
        registry: RecordingRegistry, server: socket.socket, behaviour: str) -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        if behaviour == "raises after reading":
            await receive()
        if behaviour != "returns":
            raise AssertionError("only http here")

    async def main() -> None:
        lifespan = LifespanServer(RegistrationMiddleware(bare, registration(registry, server.getsockname()[1])))
        assert await lifespan.startup() == "lifespan.startup.complete"
        await wait_for(lambda: listed(registry))
        assert await lifespan.shutdown() == "lifespan.shutdown.complete"

    asyncio.run(main())
    assert listed(registry) == []
    assert registry.stats()["counters"]["registrations"] == 1


def test_a_failed_startup_of_the_wrapped_app_reaches_the_server_and_registers_nothing(
        registry: RecordingRegistry, server: socket.socket) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    reg = registration(registry, server.getsockname()[1])

    async def main() -> None:
        lifespan = LifespanServer(RegistrationMiddleware(failing, reg))
        assert await lifespan.startup() == "lifespan.startup.failed"
        assert lifespan.task is not None
        await asyncio.wait_for(lifespan.task, 10)

    asyncio.run(main())
    assert reg.registration is None and registry.threads == []


def test_the_lifespan_helper_composes_with_the_apps_own_and_yields_its_state(
        registry: RecordingRegistry, server: socket.socket) -> None:
    events: List[Any] = []

    @contextlib.asynccontextmanager
    async def own(app: Any) -> AsyncIterator[Dict[str, str]]:
        events.append(("own started", listed(registry)))
        yield {"db": "connected"}
        events.append(("own stopping", listed(registry)))

    reg = registration(registry, server.getsockname()[1], endpoints={"grpc": ":50051"})

    async def main() -> None:
        lifespan = LifespanServer(FastAPI(lifespan=reg.lifespan(own)))
        assert await lifespan.startup() == "lifespan.startup.complete"
        await wait_for(lambda: listed(registry))
        assert lifespan.scope["state"] == {"db": "connected"}
        [instance] = registry.list_services("app")
        assert instance.endpoint("grpc") == Endpoint("127.0.0.1:50051")  # named endpoints as for any spec
        assert await lifespan.shutdown() == "lifespan.shutdown.complete"

    asyncio.run(main())
    assert events == [("own started", []), ("own stopping", [])]


def test_the_socket_the_server_listens_on_after_startup_is_the_one_advertised(registry: RecordingRegistry) -> None:
    reg = registration(registry)  # no address: found from this process's sockets

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as unrelated:  # listening before startup: not the server's
            await reg.startup()
            # What a server does once the lifespan startup is complete.
            served = await asyncio.get_running_loop().create_server(asyncio.Protocol, "0.0.0.0", 0)
            async with served:
                await wait_for(lambda: listed(registry))
                [address] = listed(registry)
                host, _, port = address.rpartition(":")
                assert served.sockets is not None
                assert int(port) == served.sockets[0].getsockname()[1] != unrelated.getsockname()[1]
                assert host != "0.0.0.0"  # every interface: the outbound address, as for WSGI
                await reg.shutdown()

    asyncio.run(main())
    assert listed(registry) == []


def test_no_registry_call_runs_on_the_event_loop(registry: RecordingRegistry, server: socket.socket) -> None:
    reg = registration(registry, server.getsockname()[1])
    registry.hold.clear()  # register() blocks until released

    async def main() -> None:
        began = time.monotonic()
        await reg.startup()
        await wait_for(lambda: registry.threads)  # register() is blocked now, and the loop runs on
        assert time.monotonic() - began < 5
        assert not listed(registry)
        registry.hold.set()
        await wait_for(lambda: listed(registry))
        await reg.shutdown()

    asyncio.run(main())
    assert len(registry.threads) == 2 and all(name.startswith("fyerreg-") for name in registry.threads)
    assert listed(registry) == []


def test_one_registration_however_often_started_and_again_after_a_shutdown(
        registry: RecordingRegistry, server: socket.socket) -> None:
    reg = registration(registry, server.getsockname()[1])

    async def serve_once() -> None:
        lifespan = LifespanServer(RegistrationMiddleware(FastAPI(lifespan=reg.lifespan()), reg))
        assert await lifespan.startup() == "lifespan.startup.complete"
        await reg.startup()
        await wait_for(lambda: listed(registry))
        assert await lifespan.shutdown() == "lifespan.shutdown.complete"

    asyncio.run(serve_once())
    assert registry.stats()["counters"]["registrations"] == 1 and listed(registry) == []
    asyncio.run(serve_once())  # a test client entering the app again
    assert registry.stats()["counters"]["registrations"] == 2 and listed(registry) == []


def test_sigterm_deregisters_and_drains_while_the_loop_serves_then_reaches_the_servers_handler(
        registry: RecordingRegistry, server: socket.socket) -> None:
    reg = ASGIRegistration("app", registry=registry, address=f"127.0.0.1:{server.getsockname()[1]}",
                           drain_delay=0.5)
    ticks: List[float] = []
    at_handler: List[Any] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def servers_handler(signum: int, frame: Any) -> None:  # what uvicorn's handle_exit does
            at_handler.append((threading.current_thread().name, listed(registry), len(ticks), time.monotonic()))
            loop.call_soon(stop.set)

        old = signal.signal(signal.SIGTERM, servers_handler)
        try:
            await reg.startup()
            await wait_for(lambda: listed(registry))
            ticks.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
            while not stop.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)
            await reg.shutdown()
        finally:
            signal.signal(signal.SIGTERM, old)

    asyncio.run(main())
    [(thread, left, ticks_then, handled_at)] = at_handler
    assert thread == "MainThread" and left == []
    assert ticks_then >= 10, "the event loop was blocked during the drain"
    assert handled_at - ticks[0] >= 0.5  # the server's handler came after the drain
    assert registry.stats()["counters"]["deregistrations"] == 1


def test_bad_arguments_are_refused_naming_them(registry: RecordingRegistry) -> None:
    with pytest.raises(ValueError, match="service"):
        ASGIRegistration("a/b", registry=registry)
    with pytest.raises(ValueError, match="address"):
        ASGIRegistration("app", registry=registry, address="nowhere")
    with pytest.raises(TypeError, match="registry"):
        ASGIRegistration("app", registry=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ASGIRegistration"):
        RegistrationMiddleware(FastAPI(), object())  # type: ignore[arg-type]


def test_starlettes_add_middleware_form_registers_through_the_apps_middleware_stack(
        registry: RecordingRegistry, server: socket.socket) -> None:
    app = FastAPI()
    app.add_middleware(RegistrationMiddleware, registration=registration(registry, server.getsockname()[1]))

    async def main() -> None:
        lifespan = LifespanServer(app)
        assert await lifespan.startup() == "lifespan.startup.complete"
        await wait_for(lambda: listed(registry))
        assert await lifespan.shutdown() == "lifespan.shutdown.complete"

    asyncio.run(main())
    assert listed(registry) == [] and registry.stats()["counters"]["registrations"] == 1
