"""The dashboard over plain HTTP: its page and JSON, the event stream's joins and leaves, lease time, shutdown."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from fyerreg import Instance
from fyerreg.ui import Dashboard
from tests.helpers import make_instance, no_fyerreg_thread_left, wait_until

from .support import EventStream, get, get_json, instance_ids, service_of

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture
def dashboard(viewer: Any) -> Iterator[Dashboard]:
    board = Dashboard(viewer, port=0)
    board.start()
    try:
        yield board
    finally:
        board.close()


def _service_event(name: str, ids: list) -> Any:
    return lambda event, data: (event == "service" and data["service"]["name"] == name
                                and instance_ids(data["service"]) == ids)


def test_the_state_holds_the_services_there_at_the_start_with_their_instances(registry: Any, viewer: Any) -> None:
    registry.register(make_instance("o-1", service="orders", port=9001, metadata={"zone": "eu-1"}))
    registry.register(make_instance("o-2", service="orders", port=9002, weight=50))
    registry.register(make_instance("p-1", service="payments", version="v2", port=9003))
    with Dashboard(viewer, port=0) as board:
        state = get_json(board.port, "/api/state")
    orders = service_of(state, "orders")
    assert orders is not None and instance_ids(orders) == ["o-1", "o-2"]
    assert orders["enabled"] == 2
    first = orders["instances"][0]
    assert (first["address"], first["status"], first["weight"], first["metadata"], first["version"]) == \
        ("127.0.0.1:9001", "enabled", 100, {"zone": "eu-1"}, "v1")
    assert orders["timeline"] == []  # what was there at the start is no change
    assert instance_ids(service_of(state, "payments") or {}) == ["p-1"]
    assert state["about"]["namespace"] == viewer.options.namespace


def test_joins_and_leaves_are_pushed_to_the_page_as_they_happen(registry: Any, viewer: Any) -> None:
    registry.register(make_instance("o-1", service="orders", port=9001))
    with Dashboard(viewer, port=0) as dashboard:
        _joins_and_leaves(registry, dashboard)


def _joins_and_leaves(registry: Any, dashboard: Dashboard) -> None:
    stream = EventStream(dashboard.port)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event, state = stream.next_event()
        assert event == "state" and instance_ids(service_of(state, "orders") or {}) == ["o-1"]
        registry.register(make_instance("o-2", service="orders", port=9002))
        _, data = stream.wait_for(_service_event("orders", ["o-1", "o-2"]), timeout=5)
        assert [(c["event"], c["id"]) for c in data["changes"]] == [("joined", "o-2")]
        registry.deregister(make_instance("o-1", service="orders", port=9001))
        _, data = stream.wait_for(_service_event("orders", ["o-2"]), timeout=5)
        assert [(c["event"], c["id"], c["address"]) for c in data["changes"]] == [("left", "o-1", "127.0.0.1:9001")]
        assert "timeline" not in data["service"]  # a change carries only itself; the state carries the timeline
        orders = service_of(get_json(dashboard.port, "/api/state"), "orders") or {}
        assert [(c["event"], c["id"]) for c in orders["timeline"]] == [("joined", "o-2"), ("left", "o-1")]
    finally:
        stream.close()


def test_a_service_registered_after_the_start_is_followed_without_rereading_etcd(
        registry: Any, dashboard: Dashboard) -> None:
    stream = EventStream(dashboard.port)
    try:
        _, state = stream.next_event()
        assert state["services"] == []
        registry.register(make_instance("n-1", service="newcomer", port=9100))
        _, data = stream.wait_for(_service_event("newcomer", ["n-1"]), timeout=5)
        assert [(c["event"], c["id"]) for c in data["changes"]] == [("joined", "n-1")]
        registry.update_service(make_instance("n-1", service="newcomer", port=9100, weight=7))
        _, data = stream.wait_for(lambda e, d: e == "service" and d["changes"]
                                  and d["changes"][0]["event"] == "changed", timeout=5)
        assert data["changes"][0]["changes"] == {"weight": [100, 7]}
    finally:
        stream.close()


def test_a_change_reaches_every_page_and_pages_that_connect_later_get_the_whole_state(
        registry: Any, dashboard: Dashboard) -> None:
    streams = [EventStream(dashboard.port) for _ in range(3)]
    try:
        for stream in streams:
            stream.next_event()
        registry.register(make_instance("a-1", service="alpha", port=9200))
        for stream in streams:
            stream.wait_for(_service_event("alpha", ["a-1"]), timeout=5)
        late = EventStream(dashboard.port)
        streams.append(late)
        event, state = late.next_event()
        assert event == "state" and instance_ids(service_of(state, "alpha") or {}) == ["a-1"]
        assert [c["event"] for c in (service_of(state, "alpha") or {})["timeline"]] == ["joined"]
    finally:
        for stream in streams:
            stream.close()


def test_the_timeline_of_a_service_keeps_only_its_last_changes(registry: Any, viewer: Any) -> None:
    with Dashboard(viewer, port=0, history=3) as board:
        for n in range(5):
            registry.register(make_instance(f"t-{n}", service="busy", port=9300 + n))
        wait_until(lambda: len(instance_ids(service_of(get_json(board.port, "/api/state"), "busy") or
                                            {"instances": []})) == 5, timeout=5)
        timeline = (service_of(get_json(board.port, "/api/state"), "busy") or {})["timeline"]
    assert len(timeline) == 3
    assert timeline[-1]["id"] == "t-4"


def test_lease_time_left_is_read_when_asked_and_a_record_without_lease_shows_none(
        registry: Any, dashboard: Dashboard, etcd_client: Any, namespace: str) -> None:
    registry.register(make_instance("l-1", service="leased", port=9400))
    ghost = Instance(id="g-1", service="leased", version="v1", address="127.0.0.1:9401")
    etcd_client.put(f"/{namespace}/services/leased/v1/g-1", ghost.to_json())  # as Go's UpdateService leaves one
    leases = wait_until(lambda: (get_json(dashboard.port, "/api/leases?service=leased")["services"]["leased"]
                                 if len(get_json(dashboard.port, "/api/leases?service=leased")["services"]
                                        .get("leased", {})) == 2 else None), timeout=5)
    assert 0 < leases["v1/l-1"] <= 10
    assert leases["v1/g-1"] is None
    everything = get_json(dashboard.port, "/api/leases")
    assert set(everything["services"]["leased"]) == {"v1/l-1", "v1/g-1"}


def test_hostile_metadata_reaches_the_page_only_as_escaped_json_and_the_page_carries_no_data(
        registry: Any, dashboard: Dashboard) -> None:
    registry.register(make_instance("h-1", service="hostile", port=9500, metadata={"note": HOSTILE}))
    wait_until(lambda: (service_of(get_json(dashboard.port, "/api/state"), "hostile") or {}).get("instances"),
               timeout=5)
    status, headers, body = get(dashboard.port, "/api/state")
    assert status == 200 and headers["content-type"] == "application/json"
    assert b"<" not in body and b">" not in body  # \u003c...: inert even if a browser took it for HTML
    assert service_of(json.loads(body), "hostile")["instances"][0]["metadata"]["note"] == HOSTILE  # type: ignore
    status, headers, page = get(dashboard.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"hostile" not in page and b"9500" not in page  # the page is static: data comes as JSON
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"


def test_the_dashboard_is_read_only_and_unknown_paths_are_404(dashboard: Dashboard) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = get(dashboard.port, "/api/state", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    assert get(dashboard.port, "/nothing-here")[0] == 404


def test_close_ends_every_event_stream_and_leaves_no_thread(registry: Any, viewer: Any) -> None:
    registry.register(make_instance("c-1", service="closing", port=9600))
    with no_fyerreg_thread_left("Dashboard.close()", prefix="fyerreg-ui-"):
        board = Dashboard(viewer, port=0)
        board.start()
        streams = [EventStream(board.port) for _ in range(2)]
        for stream in streams:
            stream.next_event()
        idle = get(board.port, "/api/state")  # and a kept-alive connection, idle now
        assert idle[0] == 200
        names = {t.name for t in threading.enumerate() if t.name.startswith("fyerreg-ui-")}
        assert {"fyerreg-ui-http", "fyerreg-ui-names", "fyerreg-ui-follow-closing", "fyerreg-ui-conn"} <= names
        started = time.monotonic()
        board.close()
        assert time.monotonic() - started < 5.0
        for stream in streams:
            assert stream.ended(timeout=2)
            stream.close()
    assert viewer.stats()["gauges"]["subscriptions"] == 0  # every subscription the dashboard made has ended


def test_more_pages_than_allowed_are_refused(viewer: Any) -> None:
    with Dashboard(viewer, port=0, max_listeners=2) as board:
        streams = [EventStream(board.port), EventStream(board.port)]
        try:
            for stream in streams:
                stream.next_event()
            third = EventStream(board.port)
            assert third.status == 503
            assert third.headers["retry-after"] == "5"
            third.close()
        finally:
            for stream in streams:
                stream.close()


def test_the_page_is_told_when_etcd_goes_away_and_comes_back(etcd_server: Any) -> None:
    from fyerreg.registry.etcd import EtcdRegistry

    with EtcdRegistry(endpoints=etcd_server.endpoints, namespace="gone", dial_timeout=2) as viewer, \
            Dashboard(viewer, port=0) as board:
        stream = EventStream(board.port)
        try:
            assert stream.next_event()[1]["connected"] is True
            etcd_server.stop()
            _, data = stream.wait_for(lambda e, d: e == "connection", timeout=20)
            assert data["connected"] is False
            assert get_json(board.port, "/api/state")["connected"] is False
            assert get(board.port, "/api/leases")[0] == 503  # read on demand: etcd is not there to answer
            etcd_server.start()
            _, data = stream.wait_for(lambda e, d: e == "connection", timeout=30)
            assert data["connected"] is True
            with EtcdRegistry(endpoints=etcd_server.endpoints, namespace="gone") as writer:
                writer.register(make_instance("b-1", service="back", port=9800))
                stream.wait_for(_service_event("back", ["b-1"]), timeout=10)  # the watch of new services resumed
        finally:
            stream.close()


def test_a_page_that_stops_reading_is_dropped_and_the_others_keep_getting_every_change(
        registry: Any, viewer: Any) -> None:
    big = "x" * 30_000  # each change carries the instance and the metadata before and after: ~90 kB
    registry.register(make_instance("s-1", service="slow", port=9700, metadata={"blob": big, "n": "0"}))
    with Dashboard(viewer, port=0, queue_size=4) as board:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", board.port))
        stalled.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{board.port}\r\n\r\n".encode())
        reader = EventStream(board.port)
        try:
            reader.next_event()
            wait_until(lambda: len(board.board.hub) == 2, timeout=5)
            n = 0
            while board.board.hub.dropped == 0:
                n += 1
                assert n <= 2000, "the page that stopped reading was never dropped"
                registry.update_service(make_instance("s-1", service="slow", port=9700,
                                                      metadata={"blob": big, "n": str(n)}))
                reader.wait_for(lambda e, d, n=n: e == "service" and
                                d["service"]["instances"][0]["metadata"]["n"] == str(n), timeout=5)
            assert len(board.board.hub) == 1  # the reader is still there
            registry.update_service(make_instance("s-1", service="slow", port=9700, metadata={"n": "last"}))
            reader.wait_for(lambda e, d: e == "service" and d["service"]["instances"][0]["metadata"] == {"n": "last"},
                            timeout=5)
            stalled.settimeout(10)
            while stalled.recv(1 << 16):  # its connection was shut: the rest of what was sent, then the end
                pass
        finally:
            reader.close()
            stalled.close()
