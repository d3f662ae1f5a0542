"""``fyerreg register --health-url/--health-cmd`` and ``fyerreg maint on|off`` against a real etcd."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from fyerreg import Instance, Status
from tests.helpers import Proc, wait_until

from .support import assert_one_line_error, cli_process, run_cli

pytestmark = pytest.mark.etcd

INTERVAL = 0.2
FAILURES = 2
SUCCESSES = 1
HEALTH = ["--health-interval", str(INTERVAL), "--health-timeout", "0.5", "--health-failures", str(FAILURES),
          "--health-successes", str(SUCCESSES)]


def statuses(registry: Any, service: str) -> List[Status]:
    return [instance.status for instance in registry.list_services(service)]


def sidecar(env: Dict[str, str], service: str, *args: str, id: str = "side-1") -> Proc:
    proc = cli_process("register", "--service", service, "--version", "v1", "--address", "127.0.0.1:7000",
                       "--id", id, *args, env=env)
    assert proc.next_line().startswith(f"registered {service}/v1/{id}"), proc.errors
    return proc


@pytest.fixture
def health_server() -> Iterator[Dict[str, Any]]:
    """An HTTP server answering GET /health with the code in ``state["code"]``."""
    state: Dict[str, Any] = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["code"] if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_sidecar_with_a_health_url_is_disabled_while_it_answers_non_2xx_and_enabled_again(
        env: Dict[str, str], registry: Any, procs: List[Proc], health_server: Dict[str, Any]) -> None:
    procs.append(sidecar(env, "by-url", "--health-url", health_server["url"], *HEALTH))
    assert statuses(registry, "by-url") == [Status.ENABLED]
    health_server["code"] = 503
    wait_until(lambda: statuses(registry, "by-url") == [Status.DISABLED], timeout=INTERVAL * FAILURES + 1)
    health_server["code"] = 204
    wait_until(lambda: statuses(registry, "by-url") == [Status.ENABLED], timeout=INTERVAL * SUCCESSES + 1)


def test_a_sidecar_with_a_health_command_is_disabled_while_it_exits_non_zero_and_enabled_again(
        env: Dict[str, str], registry: Any, procs: List[Proc], tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    procs.append(sidecar(env, "by-cmd", "--health-cmd", f"test ! -e {flag}", *HEALTH))
    assert statuses(registry, "by-cmd") == [Status.ENABLED]
    flag.touch()
    wait_until(lambda: statuses(registry, "by-cmd") == [Status.DISABLED], timeout=INTERVAL * FAILURES + 1)
    flag.unlink()
    wait_until(lambda: statuses(registry, "by-cmd") == [Status.ENABLED], timeout=INTERVAL * SUCCESSES + 1)


def test_a_health_command_that_hangs_is_killed_at_its_timeout_and_counts_as_a_failure(
        env: Dict[str, str], registry: Any, procs: List[Proc]) -> None:
    proc = sidecar(env, "hung-cmd", "--health-cmd", "sleep 600", *HEALTH)
    procs.append(proc)
    wait_until(lambda: statuses(registry, "hung-cmd") == [Status.DISABLED], timeout=(INTERVAL + 0.5) * FAILURES + 1)
    # Each run's sleep was killed at the timeout: at most the one in flight is alive.
    assert len(sleeps_of(proc.popen.pid)) <= 1


def sleeps_of(pid: int) -> List[int]:
    from tests.helpers import child_pids, process_cmdline

    return [child for child in child_pids(pid) if (process_cmdline(child) or [""])[0] == "sleep"]


def test_maint_on_disables_a_sidecar_s_instance_through_its_owner_and_off_enables_it(
        env: Dict[str, str], registry: Any, procs: List[Proc], etcd_client: Any, namespace: str) -> None:
    proc = sidecar(env, "legacy", "--ttl", "3")
    procs.append(proc)
    record = f"/{namespace}/services/legacy/v1/side-1"
    lease = etcd_client.get(record)[1].lease_id

    on = run_cli("maint", "on", "legacy", "--reason", "disk swap", env=env)
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("maintenance on: legacy/v1/side-1 (127.0.0.1:7000)")
    assert statuses(registry, "legacy") == [Status.DISABLED]
    value, meta = etcd_client.get(f"/{namespace}/maintenance/legacy/v1/side-1")
    assert json.loads(value)["reason"] == "disk swap" and meta.lease_id == 0
    # The owner wrote its own record, on its own lease; the command wrote only the key.
    assert proc.popen.poll() is None
    assert etcd_client.get(record)[1].lease_id == lease != 0

    off = run_cli("maint", "off", "legacy", env=env)
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == f"maintenance off: /{namespace}/maintenance/legacy/v1/side-1"
    wait_until(lambda: statuses(registry, "legacy") == [Status.ENABLED], timeout=5)
    assert etcd_client.get(f"/{namespace}/maintenance/legacy/v1/side-1")[0] is None


def test_maint_on_for_a_record_whose_owner_does_not_apply_it_fails_and_says_why(
        env: Dict[str, str], registry: Any) -> None:
    foreign = Instance.new("foreign", "v1", "127.0.0.1:7200", id="go-1")
    registry.register(foreign)  # a registry, not a serving registration: it does not watch maintenance keys
    try:
        result = run_cli("maint", "on", "foreign", "--wait", "1", env=env)
        assert result.returncode == 1
        line = assert_one_line_error(result)
        assert "foreign/v1/go-1" in line and "did not turn disabled" in line
        assert statuses(registry, "foreign") == [Status.ENABLED]  # nobody rewrote the record
    finally:
        assert run_cli("maint", "off", "foreign", env=env).returncode == 0
        registry.deregister(foreign)


def test_maint_on_or_off_matching_nothing_exits_1_with_one_line(env: Dict[str, str]) -> None:
    for action in ("on", "off"):
        result = run_cli("maint", action, "nobody-here", env=env)
        assert result.returncode == 1
        assert "nobody-here" in assert_one_line_error(result)


def test_maint_json_prints_one_array_whether_the_owners_applied_it_or_not(
        env: Dict[str, str], registry: Any, procs: List[Proc], namespace: str) -> None:
    procs.append(sidecar(env, "jsonned", "--ttl", "3"))
    foreign = Instance.new("jsonned", "v1", "127.0.0.1:7300", id="go-2")
    registry.register(foreign)  # its owner does not apply maintenance keys
    try:
        on = run_cli("maint", "on", "jsonned", "--wait", "2", "--json", env=env)
        assert on.returncode == 1  # go-2 stayed enabled; stdout still says what was done
        done = {entry["instance"]["id"]: entry["disabled"] for entry in json.loads(on.stdout)}
        assert done == {"side-1": True, "go-2": False}
        off = run_cli("maint", "off", "jsonned", "--json", env=env)
        assert off.returncode == 0, off.stderr
        assert sorted(entry["key"] for entry in json.loads(off.stdout)) == [
            f"/{namespace}/maintenance/jsonned/v1/go-2", f"/{namespace}/maintenance/jsonned/v1/side-1"]
        for action in ("on", "off"):
            nothing = run_cli("maint", action, "nobody-here", "--json", env=env)
            assert (nothing.returncode, json.loads(nothing.stdout)) == (1, [])
    finally:
        registry.deregister(foreign)


@pytest.mark.parametrize("layout", ["kratos", "etcd-naming"])
def test_maint_on_and_off_work_the_same_on_other_layouts(
        layout: str, env: Dict[str, str], etcd_endpoints: List[str], namespace: str, procs: List[Proc]) -> None:
    from fyerreg import EtcdRegistry

    service = f"laid-{namespace}"  # etcd-naming and Kratos keys do not sit under the namespace
    layout_env = {**env, "FYERREG_LAYOUT": layout}
    procs.append(sidecar(layout_env, service))
    with EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, layout=layout) as reader:
        on = run_cli("maint", "on", service, env=layout_env)
        assert on.returncode == 0, on.stderr
        assert statuses(reader, service) == [Status.DISABLED]
        off = run_cli("maint", "off", service, env=layout_env)
        assert off.returncode == 0, off.stderr
        wait_until(lambda: statuses(reader, service) == [Status.ENABLED], timeout=5)
