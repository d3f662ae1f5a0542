"""fyerreg.serving.probes: what /healthz and /readyz answer in each state of a registration, and the
shutdown order (readiness fails, then the record goes, then the drain)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Tuple

import pytest

from fyerreg import MemoryRegistry
from fyerreg.api import Server, ServerOptions
from fyerreg.naming import Status
from fyerreg.serving import InstanceSpec, ServingRegistration
from fyerreg.serving.http_probes import WSGIProbes
from fyerreg.serving.probes import ProbeAnswer, Probes, lease_ttl
from tests.helpers import free_port, wait_until


def registration(registry: Any, port: int, **kw: Any) -> ServingRegistration:
    spec = InstanceSpec("app", address=f"127.0.0.1:{port}", drain_delay=kw.pop("drain_delay", 0.0),
                        metadata={"token": "s3cret"})
    return ServingRegistration(registry, spec, wait_ready=kw.pop("wait_ready", False), deregister_at_exit=False, **kw)


def state(answer: ProbeAnswer) -> Tuple[int, str]:
    return answer.status, str(answer.body["status"])


def test_before_the_registration_exists_the_process_is_live_but_not_ready() -> None:
    probes = Probes(lambda: None)
    assert state(probes.healthz()) == (200, "starting")
    assert state(probes.readyz()) == (503, "starting")


def test_while_the_first_registration_waits_for_the_port_it_is_live_starting_and_not_ready(
        registry: MemoryRegistry) -> None:
    reg = registration(registry, free_port(), wait_ready=True, ready_timeout=30)
    reg.start()
    try:
        probes = Probes(reg)
        assert state(probes.healthz()) == (200, "starting")
        assert state(probes.readyz()) == (503, "unregistered")
    finally:
        reg.stop()


def test_a_registration_that_gave_up_fails_liveness(registry: MemoryRegistry) -> None:
    reg = registration(registry, free_port(), wait_ready=True, ready_timeout=0.2)
    reg.start()
    try:
        wait_until(lambda: reg.settled, timeout=10)
        assert state(Probes(reg).healthz()) == (503, "unregistered")
        assert state(Probes(reg).readyz()) == (503, "unregistered")
    finally:
        reg.stop()


def test_registered_and_enabled_is_live_and_ready_and_the_body_names_the_instance_not_its_metadata(
        registry: MemoryRegistry, port: int) -> None:
    with registration(registry, port) as reg:
        probes = Probes(reg)
        health, ready = probes.healthz(), probes.readyz()
        assert state(health) == (200, "ok") and state(ready) == (200, "ready")
        body = json.loads(ready.encode())
        assert body["service"] == "app" and body["id"] == reg.instance.id and body["address"] == f"127.0.0.1:{port}"
        assert "s3cret" not in ready.encode().decode() + health.encode().decode()


def test_disabled_is_live_but_not_ready_and_enabled_again_is_ready(registry: MemoryRegistry, port: int) -> None:
    with registration(registry, port) as reg:
        probes = Probes(reg)
        reg.set_status(Status.DISABLED)
        assert state(probes.readyz()) == (503, "disabled")
        assert state(probes.healthz()) == (200, "ok")
        reg.set_status(Status.ENABLED)
        assert state(probes.readyz()) == (200, "ready")


def test_a_record_the_registry_lost_fails_liveness(port: int) -> None:
    with MemoryRegistry(ttl=1) as registry, registration(registry, port) as reg:
        probes = Probes(reg)
        assert state(probes.healthz()) == (200, "ok")
        registry.set_available(False)  # heartbeats fail: the lease expires and the record is dropped
        wait_until(lambda: probes.healthz().status == 503, timeout=10)
        assert state(probes.healthz())[1] in ("lost", "stale")
        registry.set_available(True)


def test_stop_fails_readiness_first_then_deregisters_after_unready_delay_then_drains(
        registry: MemoryRegistry, port: int) -> None:
    reg = registration(registry, port, unready_delay=1.5, drain_delay=1.0)
    reg.start()
    probes = Probes(reg)
    assert not reg.draining and probes.readyz().ok
    seen: Dict[str, float] = {}

    def watch() -> None:
        while "stopped" not in seen:
            now = time.monotonic()
            if not probes.readyz().ok:
                seen.setdefault("unready", now)
            if not registry.list_services("app"):
                seen.setdefault("gone", now)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    began = time.monotonic()
    reg.stop_in_thread(lambda: seen.setdefault("stopped", time.monotonic()))
    wait_until(lambda: "stopped" in seen, timeout=15)
    watcher.join(5)
    assert reg.draining
    assert state(probes.readyz()) == (503, "draining") and state(probes.healthz()) == (200, "draining")
    assert began <= seen["unready"] < seen["gone"] < seen["stopped"], seen
    assert seen["gone"] - began >= 1.5, "deregistered before the unready delay"
    assert seen["stopped"] - seen["gone"] >= 0.9, "stopped before the drain"  # gone is seen a poll late


def test_unready_delay_must_not_be_negative(registry: MemoryRegistry, port: int) -> None:
    with pytest.raises(ValueError, match="unready_delay"):
        registration(registry, port, unready_delay=-1)


@pytest.mark.etcd
def test_heartbeats_older_than_stale_after_fail_liveness_while_etcd_hangs_and_recover_after(
        etcd_server: Any) -> None:
    from fyerreg.registry.etcd import EtcdRegistry

    with socket.create_server(("127.0.0.1", 0)) as listener, \
            EtcdRegistry(endpoints=etcd_server.endpoints, ttl=3, dial_timeout=1) as registry:
        assert lease_ttl(registry) == 3
        with registration(registry, listener.getsockname()[1]) as reg:
            probes = Probes(reg, stale_after=1.5)
            wait_until(lambda: registry.registration_state(reg.instance).last_refresh is not None, timeout=10)
            assert state(probes.healthz()) == (200, "ok")
            etcd_server.pause()
            try:
                wait_until(lambda: probes.healthz().status == 503, timeout=15,
                           message="liveness to fail while no heartbeat succeeds")
                assert state(probes.healthz())[1] in ("stale", "lost")
            finally:
                etcd_server.resume()
            wait_until(lambda: state(probes.healthz()) == (200, "ok"), timeout=30,
                       message="liveness to recover once heartbeats succeed again")


def call(app: Any, method: str, path: str) -> Tuple[str, bytes]:
    got: List[str] = []
    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda status, headers: got.append(status)))
    return got[0], body


def test_the_wsgi_middleware_answers_only_its_two_paths_and_passes_everything_else(
        registry: MemoryRegistry, port: int) -> None:
    def inner(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [])
        return [b"app:" + environ["PATH_INFO"].encode()]

    with registration(registry, port) as reg:
        app = WSGIProbes(inner, Probes(reg), healthz_path="/-/live", readyz_path="/-/ready")
        assert call(app, "GET", "/-/live")[0] == "200 OK"
        status, body = call(app, "GET", "/-/ready")
        assert status == "200 OK" and json.loads(body)["status"] == "ready"
        assert call(app, "HEAD", "/-/ready") == ("200 OK", b"")
        assert call(app, "GET", "/healthz") == ("200 OK", b"app:/healthz")
        assert call(app, "POST", "/-/ready") == ("200 OK", b"app:/-/ready")
        reg.set_status(Status.DISABLED)
        assert call(app, "GET", "/-/ready")[0] == "503 Service Unavailable"
    with pytest.raises(ValueError, match="readyz_path"):
        WSGIProbes(inner, Probes(None), readyz_path="readyz")


def get(url: str) -> Tuple[int, Dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_api_server_with_probes_answers_them_and_fails_readiness_before_it_deregisters(
        registry: MemoryRegistry) -> None:
    server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                  service_name="api-app", drain_delay=2.0, probes=True, unready_delay=1.5))
    server.start()
    address = server.address
    base = f"http://{address}"
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/readyz") == (200, {"status": "ready", "reason": "registered and enabled", "service": "api-app",
                                           "version": "1.0.0", "id": server.instance.id if server.instance else "",
                                           "address": address})
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    try:
        wait_until(lambda: get(base + "/readyz")[0] == 503, timeout=5)
        assert [i.address for i in registry.list_services("api-app")] == [address], \
            "the record went before readiness failed"
        wait_until(lambda: registry.list_services("api-app") == [], timeout=10)
        assert get(base + "/readyz")[1]["status"] == "draining", "the server stopped before the drain"
    finally:
        stopper.join(15)


def test_api_server_without_probes_leaves_the_paths_to_the_app() -> None:
    with Server(ServerOptions(address="127.0.0.1:0")) as server:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://{server.address}/readyz", timeout=5)
        assert caught.value.code != 503


def test_api_server_probes_without_a_registration_are_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match="enable_registry"):
        ServerOptions(address="127.0.0.1:0", probes=True)


def test_a_registry_closed_under_the_registration_fails_liveness_instead_of_raising(port: int) -> None:
    registry = MemoryRegistry()
    reg = registration(registry, port)
    reg.start()
    registry.close()
    try:
        assert state(Probes(reg).healthz()) == (503, "lost")
    finally:
        reg.stop()
