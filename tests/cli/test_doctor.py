"""``fyerreg doctor`` against real etcd servers: one line per check, its JSON, its exit status."""

from __future__ import annotations

import email.utils
import http.server
import json
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from fyerreg.cli._clock import read_server_clock, skew_bounds
from fyerreg.naming import Instance
from fyerreg.testing import EtcdServer, TLSEtcdServer, enable_auth, make_certificates

from .support import cli_env, run_cli

CHECKS = ["connect", "auth", "namespace", "records", "clock", "lease-ttl"]
ORDERS = Instance.new("orders", "v1", "10.0.0.1:8080", id="a")


def _lines(stdout: str) -> Dict[str, List[str]]:
    """check name -> [status, message] for each line of the text output."""
    out = {}
    for line in stdout.splitlines():
        status, name, message = line.split(None, 2)
        out[name] = [status, message]
    return out


def _doctor_json(*args: str, env: Dict[str, str]) -> Any:
    result = run_cli("doctor", "--json", *args, env=env)
    return result, {c["check"]: c for c in json.loads(result.stdout)}


def test_a_healthy_namespace_is_ok_on_every_line_and_exits_0(registry: Any, env: Dict[str, str]) -> None:
    registry.register(ORDERS)

    result = run_cli("doctor", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert list(lines) == CHECKS
    assert all(status == "ok" for status, _ in lines.values()), result.stdout
    assert "1 record of 1 service under" in lines["namespace"][1]
    assert "etcd's clock agrees" in lines["clock"][1]

    result, checks = _doctor_json(env=env)
    assert result.returncode == 0
    assert list(checks) == CHECKS
    assert checks["namespace"]["services"] == ["orders"] and checks["namespace"]["layout"] == "fyer-rpc"
    assert checks["clock"]["skew_low"] <= 0 <= checks["clock"]["skew_high"]
    assert checks["lease-ttl"]["ttl"] == 30


def test_an_empty_namespace_warns_and_strict_makes_a_warning_exit_1(env: Dict[str, str]) -> None:
    result = run_cli("doctor", env=env)
    assert result.returncode == 0
    assert _lines(result.stdout)["namespace"][0] == "warn"

    strict = run_cli("doctor", "--strict", env=env)
    assert strict.returncode == 1
    assert _lines(strict.stdout)["namespace"][0] == "warn"


def test_records_of_another_layout_are_found_and_named(etcd_endpoints: List[str], namespace: str,
                                                        env: Dict[str, str]) -> None:
    from fyerreg.registry.etcd import EtcdRegistry

    with EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, layout="kratos", ttl=10) as kratos:
        kratos.register(ORDERS)
        checks = _doctor_json(env=env)[1]
        assert checks["namespace"]["status"] == "warn"
        assert checks["namespace"]["other_layouts"] == {"kratos": 1}
        assert "--layout kratos" in checks["namespace"]["message"]

        fixed = run_cli("doctor", "--layout", "kratos", env=env)
        assert _lines(fixed.stdout)["namespace"][0] == "ok"


def test_invalid_and_unleased_records_are_counted_and_named(
    registry: Any, etcd_client: Any, namespace: str, env: Dict[str, str]
) -> None:
    registry.register(ORDERS)
    root = f"/{namespace}/services"
    etcd_client.put(f"{root}/orders/v1/broken", "not json")
    etcd_client.put(f"{root}/orders/v1/half", json.dumps({"id": "half"}))
    etcd_client.put(f"{root}/orders/v1/ghost", ORDERS.replace(id="ghost").to_json())  # no lease

    result, checks = _doctor_json(env=env)
    assert result.returncode == 0  # a warning, not a failure
    records = checks["records"]
    assert records["status"] == "warn"
    assert sorted(i["key"] for i in records["invalid"]) == [f"{root}/orders/v1/broken", f"{root}/orders/v1/half"]
    assert records["without_lease"] == [f"{root}/orders/v1/ghost"]
    assert "2 keys not a valid record" in records["message"]
    assert checks["namespace"]["records"] == 2  # a and ghost

    text = _lines(run_cli("doctor", env=env).stdout)
    assert text["records"][0] == "warn" and f"{root}/orders/v1/broken" in text["records"][1]


def test_an_unreachable_etcd_fails_connect_skips_the_rest_and_exits_3() -> None:
    env = cli_env(["127.0.0.1:1"], "nowhere", FYERREG_DIAL_TIMEOUT="1")
    result = run_cli("doctor", env=env)
    assert result.returncode == 3
    lines = _lines(result.stdout)
    assert lines["connect"][0] == "fail" and "unreachable" in lines["connect"][1]
    assert [lines[name][0] for name in CHECKS[1:]] == ["skip"] * 5

    result, checks = _doctor_json(env=env)
    assert result.returncode == 3
    assert checks["connect"]["status"] == "fail"


def test_a_short_ttl_warns_and_one_below_etcds_minimum_fails(env: Dict[str, str]) -> None:
    result, checks = _doctor_json("--ttl", "3", env=env)
    assert result.returncode == 0
    assert checks["lease-ttl"]["status"] == "warn"

    # etcd's minimum lease TTL is 1.5 x its election timeout: 3 s with a 2 s one.
    with EtcdServer(extra_args=["--heartbeat-interval", "200", "--election-timeout", "2000"]) as slow:
        slow_env = cli_env(slow.endpoints, "ttl-check")
        result, checks = _doctor_json("--ttl", "2", env=slow_env)
        assert result.returncode == 1
        assert checks["lease-ttl"]["status"] == "fail"
        assert checks["lease-ttl"]["etcd_minimum"] == 3
        assert _doctor_json(env=slow_env)[1]["lease-ttl"]["status"] == "ok"  # the default 30 s


def test_rejected_credentials_fail_auth_and_exit_3() -> None:
    with EtcdServer() as server:
        enable_auth(server.endpoints, root_password="r00t-pw", users={"alice": ("al1ce-pw", "/A/")})
        base = cli_env(server.endpoints, "A", FYERREG_USER="alice")

        wrong = run_cli("doctor", env=dict(base, FYERREG_PASSWORD="wrong"))
        assert wrong.returncode == 3
        lines = _lines(wrong.stdout)
        assert lines["connect"][0] == "ok" and lines["auth"][0] == "fail"
        assert "rejected the credentials of 'alice'" in lines["auth"][1]

        other_namespace = run_cli("doctor", env=dict(base, FYERREG_PASSWORD="al1ce-pw", FYERREG_NAMESPACE="B"))
        assert other_namespace.returncode == 3
        assert _lines(other_namespace.stdout)["auth"][0] == "fail"

        right = run_cli("doctor", env=dict(base, FYERREG_PASSWORD="al1ce-pw"))
        assert right.returncode == 0, right.stdout
        assert _lines(right.stdout)["auth"] == ["ok", "authenticated as 'alice'; may read '/A/services/'"]


def test_over_mutual_tls_every_check_runs_and_the_clock_is_read_over_https(tmp_path: Any) -> None:
    pytest.importorskip("cryptography")
    certs = make_certificates(str(tmp_path / "pki"))
    with TLSEtcdServer(certs) as server:  # a client certificate is required, for HTTP too
        env = cli_env([server.tls_endpoint], "tls", FYERREG_CACERT=certs.ca, FYERREG_CERT=certs.client_cert,
                      FYERREG_KEY=certs.client_key)
        result, checks = _doctor_json(env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert checks["connect"]["tls"] is True
        assert checks["clock"]["status"] == "ok" and checks["clock"]["etcd_version"]


class _SkewedHandler(http.server.BaseHTTPRequestHandler):
    offset = 3600.0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        body = b'{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def date_time_string(self, timestamp: Any = None) -> str:
        return email.utils.formatdate(time.time() + self.offset, usegmt=True)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def skewed_server() -> Iterator[str]:
    """An HTTP server answering /version like etcd, with a Date one hour ahead."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _SkewedHandler)
    thread = threading.Thread(target=server.serve_forever, name="fyerreg-test-skewed", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_clock_an_hour_off_is_measured_within_its_bounds(skewed_server: str) -> None:
    clock = read_server_clock(skewed_server, secure=False, timeout=5)
    low, high = skew_bounds(clock)
    assert 3598 <= low <= 3600 <= high <= 3602
    assert clock.version == "3.5.1"
