"""contrib.httpx: real httpx clients, sync and async, calling real HTTP servers (processes registered in a
real etcd, progs/http_counter.py) by service name; one server SIGKILLed while threads and tasks call."""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import signal
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest

from fyerreg import Endpoint, EtcdRegistry, Instance, MemoryRegistry, NoInstanceAvailableError
from fyerreg.contrib.httpx import AsyncDiscoveryTransport, DiscoveryTransport, NoInstanceError
from fyerreg.discovery import Discovery, LeastRequestsBalancer
from tests.helpers import Proc, free_port, wait_until

from .procs import EXAMPLES, get_json, python, serve_https

pytestmark = pytest.mark.etcd

COUNTER = Path(__file__).resolve().parent / "progs" / "http_counter.py"


class Fleet:
    """Counting HTTP servers of one service (a fresh name per test), each a process registered in etcd."""

    def __init__(self, etcd_endpoints: List[str], procs: List[Any]) -> None:
        self.etcd = ",".join(etcd_endpoints)
        self.procs = procs
        self.service = f"httpx-{secrets.token_hex(3)}"
        self.servers: Dict[str, Proc] = {}
        self.ports: Dict[str, int] = {}
        self.registry = EtcdRegistry(endpoints=etcd_endpoints)
        self.discoveries: List[Discovery] = []
        self.held: List[socket.socket] = []

    def start(self, ident: str, version: str = "1.0.0", *flags: str) -> None:
        proc = python(str(COUNTER), self.etcd, self.service, version, ident, *flags)
        self.procs.append(proc)
        self.servers[ident] = proc
        self.ports[ident] = int(proc.wait_for("ready").split()[1])

    def discovery(self, version: Optional[str] = "1.0.0", expect: int = 3, **options: Any) -> Discovery:
        discovery = Discovery(self.registry, **{"balancer": "round_robin", **options})
        self.discoveries.append(discovery)
        wait_until(lambda: len(discovery.instances(self.service, version)) == expect, timeout=10)
        return discovery

    def kill(self, ident: str) -> None:
        """SIGKILL the server; its port stays held (bound, not listening), so connecting to it is refused."""
        self.servers[ident].signal(signal.SIGKILL)
        self.servers[ident].wait()
        hold = socket.socket()
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind(("127.0.0.1", self.ports.pop(ident)))
        self.held.append(hold)

    def counts(self, key: str) -> Dict[str, int]:
        """How often each live server was asked ``key`` ("METHOD /path")."""
        return {ident: get_json(f"http://127.0.0.1:{port}/count").get(key, 0) for ident, port in self.ports.items()}

    def url(self, path: str, host: Optional[str] = None) -> str:
        return f"http://{host or self.service}{path}"

    def close(self) -> None:
        for discovery in self.discoveries:
            discovery.close()
        for proc in self.servers.values():
            if proc.popen.poll() is None:
                proc.stop(signal.SIGTERM)
        self.registry.close()
        for hold in self.held:
            hold.close()


@pytest.fixture
def fleet(etcd_endpoints: List[str], procs: List[Any]) -> Iterator[Fleet]:
    f = Fleet(etcd_endpoints, procs)
    yield f
    f.close()


def calls_and_errors(discovery: Discovery) -> Dict[str, Dict[str, int]]:
    """Per instance id: the calls and failed calls discovery has heard of."""
    found: Dict[str, Dict[str, int]] = collections.defaultdict(lambda: {"calls": 0, "errors": 0})
    for service in discovery.describe()["services"]:
        for row in service["instances"]:
            found[row["id"]]["calls"] += row["calls"]
            found[row["id"]]["errors"] += row["errors"]
    return found


def sync_client(discovery: Discovery, **options: Any) -> httpx.Client:
    return httpx.Client(transport=DiscoveryTransport(discovery, **{"version": "1.0.0", **options}), timeout=10)


def async_client(discovery: Discovery, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncDiscoveryTransport(discovery, **{"version": "1.0.0", **options}),
                             timeout=10)


def test_a_sigkilled_instance_fails_no_get_of_threads_and_tasks_and_later_posts_fail_over(fleet: Fleet) -> None:
    for ident in "abc":
        fleet.start(ident)
    discovery = fleet.discovery()
    failures: List[str] = []
    answered: Dict[str, int] = collections.Counter()
    after_kill: Dict[str, int] = collections.Counter()
    lock = threading.Lock()
    killed, stop = threading.Event(), threading.Event()

    def answer(response: httpx.Response) -> None:
        response.raise_for_status()
        with lock:
            (after_kill if killed.is_set() else answered)[response.json()["by"]] += 1

    def sync_calls(n: int) -> None:
        with sync_client(discovery) as http:
            while not stop.is_set():
                try:
                    answer(http.get(fleet.url(f"/hello/thread-{n}?delay=0.01")))
                except Exception as exc:  # every failure is the test's failure, reported below
                    failures.append(f"thread {n}: {exc!r}")

    async def async_calls() -> None:
        async with async_client(discovery) as http:
            async def task(n: int) -> None:
                while not stop.is_set():
                    try:
                        answer(await http.get(fleet.url(f"/hello/task-{n}?delay=0.01")))
                    except Exception as exc:
                        failures.append(f"task {n}: {exc!r}")
            await asyncio.gather(*(task(n) for n in range(20)))

    # Each call takes 10 ms: some are in flight on the killed instance, broken after it got them (retried, GETs).
    callers = [threading.Thread(target=sync_calls, args=(n,)) for n in range(4)]
    callers.append(threading.Thread(target=lambda: asyncio.run(async_calls())))
    for t in callers:
        t.start()
    try:
        wait_until(lambda: sum(answered.values()) >= 300 or failures, timeout=30)
        fleet.kill("a")
        killed.set()
        wait_until(lambda: sum(after_kill.values()) >= 300 or failures, timeout=30)
    finally:
        stop.set()
        for t in callers:
            t.join(30)
    assert failures == []
    assert set(answered) == {"a", "b", "c"}
    assert after_kill["b"] > 0 and after_kill["c"] > 0
    assert calls_and_errors(discovery)["a"]["errors"] > 0, "no call went to the killed instance and failed over"

    # Still registered (its lease outlives the test), the dead instance refuses connections: POSTs never
    # reached it, so they go elsewhere. A fresh discovery has not ejected it yet, so it is picked.
    fresh = fleet.discovery()
    with sync_client(fresh) as http:
        sync_posts = [http.post(fleet.url(f"/hello/post-{i}"), content=b"x") for i in range(6)]

    async def async_posts() -> List[httpx.Response]:
        async with async_client(fresh) as http:
            return list(await asyncio.gather(*(http.post(fleet.url(f"/hello/apost-{i}"), json=i) for i in range(6))))

    posts = sync_posts + asyncio.run(async_posts())
    assert [p.status_code for p in posts] == [200] * 12
    assert {p.json()["by"] for p in posts} <= {"b", "c"}
    assert calls_and_errors(fresh)["a"]["errors"] > 0, "no POST was sent to the dead instance first"
    for i in range(6):  # each processed exactly once
        assert sum(fleet.counts(f"POST /hello/post-{i}").values()) == 1
        assert sum(fleet.counts(f"POST /hello/apost-{i}").values()) == 1


def test_5xx_answers_are_returned_and_count_against_their_instance(fleet: Fleet) -> None:
    fleet.start("sick", "1.0.0", "--sick")
    fleet.start("b")
    fleet.start("c")
    discovery = fleet.discovery()
    with sync_client(discovery) as http:
        statuses = [http.get(fleet.url("/hello/x")).status_code for _ in range(30)]

    async def async_gets() -> List[int]:
        async with async_client(discovery) as http:
            return [(await http.get(fleet.url("/hello/y"))).status_code for _ in range(10)]

    assert 503 in statuses
    assert statuses[-10:] == [200] * 10, "the failing instance was never ejected"
    assert asyncio.run(async_gets()) == [200] * 10
    seen = calls_and_errors(discovery)
    assert seen["sick"]["errors"] == seen["sick"]["calls"] > 0
    assert seen["b"]["errors"] == seen["c"]["errors"] == 0
    assert fleet.counts("GET /hello/x")["sick"] == seen["sick"]["calls"], "a 5xx answer was retried"


def test_the_host_names_the_version_and_the_http_endpoint_is_called_with_its_host(fleet: Fleet) -> None:
    fleet.start("old", "1.0.0")
    fleet.start("new", "2.0.0")
    discovery = fleet.discovery(None, expect=2)
    with sync_client(discovery) as http:
        assert {http.get(fleet.url("/hello/x", f"{fleet.service}.2.0.0")).json()["by"] for _ in range(4)} == {"new"}
        answer = http.get(fleet.url("/hello/x")).json()
    assert answer["by"] == "old"  # version= of the transport: the primary address (refusing) is not called
    assert answer["host"] == f"127.0.0.1:{fleet.ports['old']}"

    async def by_host() -> List[str]:
        async with async_client(discovery, versions={fleet.service: "2.0.0"}) as http:
            return [(await http.get(fleet.url("/hello/x", host))).json()["by"]
                    for host in (fleet.service, f"{fleet.service}.1.0.0", fleet.service.upper())]

    assert asyncio.run(by_host()) == ["new", "old", "new"]

    # Mounted for one host, the transport leaves every other URL to httpx's own.
    mounted = DiscoveryTransport(discovery, version="1.0.0")
    with httpx.Client(mounts={f"http://{fleet.service}": mounted}, timeout=10) as http:
        assert http.get(fleet.url("/hello/x")).json()["by"] == "old"
        assert http.get(f"http://127.0.0.1:{fleet.ports['new']}/hello/x").json()["by"] == "new"


@pytest.mark.parametrize("method,processed", [("POST", 1), ("GET", 3), ("PUT", 3)])
def test_a_request_that_may_have_been_processed_is_resent_only_when_idempotent(
        fleet: Fleet, method: str, processed: int) -> None:
    for ident in "abc":
        fleet.start(ident)
    discovery = fleet.discovery()
    with sync_client(discovery) as http, pytest.raises(httpx.RemoteProtocolError):
        http.request(method, fleet.url("/drop"), content=b"x" if method != "GET" else None)
    assert sum(fleet.counts(f"{method} /drop").values()) == processed

    async def call() -> None:
        async with async_client(discovery) as http:
            await http.request(method, fleet.url("/drop"))

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(call())
    assert sum(fleet.counts(f"{method} /drop").values()) == 2 * processed
    if processed > 1:
        assert set(fleet.counts(f"{method} /drop").values()) == {2}, "a retry went to an instance already tried"


def test_a_streamed_body_is_not_resent_once_read_but_is_when_it_never_left(
        fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    for ident in "abc":
        fleet.start(ident)
    discovery = fleet.discovery()

    def chunks() -> Iterator[bytes]:
        yield b"stre"
        yield b"amed"

    with sync_client(discovery) as http, caplog.at_level(logging.INFO, "fyerreg.contrib.httpx"):
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(fleet.url("/drop"), content=chunks())  # PUT is idempotent, but the stream is gone
        assert sum(fleet.counts("PUT /drop").values()) == 1
    assert any("its body is a stream, already read" in r.getMessage() for r in caplog.records)

    async def achunks() -> Any:
        yield b"async "
        yield b"stream"

    async def aput() -> None:
        async with async_client(discovery) as http:
            await http.put(fleet.url("/drop"), content=achunks())

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(aput())
    assert sum(fleet.counts("PUT /drop").values()) == 2

    # An instance refusing connections first: the stream was never read, so it goes, whole, to the next one.
    registry = MemoryRegistry()
    registry.register(Instance.new("streams", "1.0.0", f"127.0.0.1:{free_port()}", id="dead"))
    registry.register(Instance.new("streams", "1.0.0", f"127.0.0.1:{fleet.ports['b']}", id="b"))
    with registry, Discovery(registry, balancer="round_robin") as memory:
        # Round robin over two: of two calls in a row, one at least goes to the dead instance first.
        with sync_client(memory) as http:
            answers = [http.post("http://streams/hello/s", content=chunks()).json() for _ in range(2)]
        refused = calls_and_errors(memory)["dead"]["errors"]

        async def apost() -> List[Any]:
            async with async_client(memory) as http:
                return [(await http.post("http://streams/hello/s", content=achunks())).json() for _ in range(2)]

        answers += asyncio.run(apost())
        assert refused >= 1 and calls_and_errors(memory)["dead"]["errors"] > refused
    assert [(a["by"], a["body"]) for a in answers] == [("b", "streamed")] * 2 + [("b", "async stream")] * 2


def test_a_cancelled_async_request_leaves_no_call_in_flight(fleet: Fleet) -> None:
    fleet.start("a")
    balancers: List[LeastRequestsBalancer] = []

    def least_requests() -> LeastRequestsBalancer:
        balancers.append(LeastRequestsBalancer())
        return balancers[-1]

    discovery = fleet.discovery(expect=1, balancer=least_requests)
    [inst] = discovery.instances(fleet.service, "1.0.0")

    async def cancelled() -> int:
        async with async_client(discovery) as http:
            slow = asyncio.ensure_future(http.get(fleet.url("/slow")))
            await asyncio.to_thread(wait_until, lambda: fleet.counts("GET /slow")["a"] == 1)
            during = balancers[-1].in_flight(inst)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(http.get(fleet.url("/slow")), 0.5)
            return during

    assert asyncio.run(cancelled()) == 1
    assert balancers[-1].in_flight(inst) == 0
    assert calls_and_errors(discovery)["a"]["errors"] == 0, "a cancellation counted as a failed call"


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[Tuple[str, str]]:
    with serve_https(str(tmp_path)) as served:
        yield served


def test_an_http_endpoint_marked_tls_is_called_with_https(https_server: Tuple[str, str]) -> None:
    address, ca = https_server
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        registry.register(Instance.new("secure", "1.0.0", f"127.0.0.1:{free_port()}",
                                       endpoints={"http": Endpoint(address, tls=True)}))
        with sync_client(discovery, verify=ssl.create_default_context(cafile=ca)) as http:
            assert http.get("http://secure/x").json() == {"tls": True}

        async def get() -> Any:
            async with async_client(discovery, verify=ssl.create_default_context(cafile=ca)) as http:
                return (await http.get("http://secure/x")).json()

        assert asyncio.run(get()) == {"tls": True}


def test_no_instance_is_both_an_httpx_connect_error_and_a_fyerreg_error() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        with sync_client(discovery) as http, pytest.raises(NoInstanceError) as err:
            http.get("http://nobody/x")
        assert isinstance(err.value, httpx.ConnectError) and isinstance(err.value, NoInstanceAvailableError)
        assert err.value.service == "nobody" and err.value.request.url == httpx.URL("http://nobody/x")

        async def get() -> None:
            async with async_client(discovery, services=["NoBody"]) as http:
                await http.get("http://NoBody/x")

        with pytest.raises(NoInstanceError, match="NoBody"):
            asyncio.run(get())


def test_urls_with_a_port_and_bad_options_are_refused() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        with sync_client(discovery) as http, pytest.raises(ValueError, match="without a port"):
            http.get("http://svc:8080/x")
        with pytest.raises(TypeError, match="not both"):
            DiscoveryTransport(discovery, transport=httpx.HTTPTransport(), http2=True)
        with pytest.raises(ValueError, match="retries"):
            AsyncDiscoveryTransport(discovery, retries=-1)
        with pytest.raises(TypeError, match="Discovery"):
            DiscoveryTransport(registry)  # type: ignore[arg-type]


def test_example_httpx_client_calls_the_flask_example_sync_and_async(etcd_endpoints: List[str],
                                                                     procs: List[Any]) -> None:
    etcd = ",".join(etcd_endpoints)
    app = python(str(EXAMPLES / "flask_app.py"), "--port", str(free_port()), "--etcd", etcd)
    procs.append(app)
    with EtcdRegistry(endpoints=etcd_endpoints) as registry, Discovery(registry) as discovery:
        wait_until(lambda: discovery.instances("hello-flask", "1.0.0"), timeout=30)
        client = python(str(EXAMPLES / "httpx_client.py"), "--etcd", etcd, "--count", "3")
        procs.append(client)
        assert client.wait(60) == 0, client.output()
        assert len([line for line in client.lines if line.startswith("Hello sync-")]) == 3
        assert len([line for line in client.lines if line.startswith("Hello async-")]) == 3
        app.signal(signal.SIGTERM)  # deregisters: the next test using the Flask example finds only its own
        wait_until(lambda: not registry.list_services("hello-flask", "1.0.0"), timeout=10)

