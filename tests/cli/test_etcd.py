"""Every ``fyerreg`` subcommand run as a subprocess against a real etcd."""

from __future__ import annotations

import json
import signal
from typing import Any, Dict, List

import pytest

from fyerreg.naming import Endpoint, Instance, Status
from fyerreg.serving.address import outbound_ip
from fyerreg.testing import enable_auth
from tests.helpers import Proc, free_port

from .support import TIMEOUT, assert_one_line_error, cli_env, cli_process, next_json, run_cli

ORDERS_A = Instance.new("orders", "v1", "10.0.0.1:8080", id="a", metadata={"zone": "eu-1"})
ORDERS_B = Instance.new("orders", "v1", "10.0.0.2:8080", id="b", status=Status.DISABLED, weight=5)
ORDERS_C = Instance.new("orders", "v2", "10.0.0.3:8080", id="c")
PAYMENTS = Instance.new("payments", "v1", "10.0.0.9:9000", id="p")


def test_services_lists_every_service_version_with_counts(registry: Any, env: Dict[str, str]) -> None:
    for inst in (ORDERS_A, ORDERS_B, ORDERS_C, PAYMENTS):
        registry.register(inst)

    result = run_cli("services", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "SERVICE   VERSION  INSTANCES  ENABLED",
        "orders    v1       2          1",
        "orders    v2       1          1",
        "payments  v1       1          1",
    ]

    as_json = run_cli("services", "--json", env=env)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == [
        {"service": "orders", "version": "v1", "instances": 2, "enabled": 1},
        {"service": "orders", "version": "v2", "instances": 1, "enabled": 1},
        {"service": "payments", "version": "v1", "instances": 1, "enabled": 1},
    ]


def test_services_with_nothing_registered_exits_1(env: Dict[str, str]) -> None:
    result = run_cli("services", env=env)
    assert result.returncode == 1
    assert "no services" in assert_one_line_error(result)
    assert result.stdout == ""


def test_list_prints_an_aligned_table_with_lease_ttl_left(registry: Any, env: Dict[str, str]) -> None:
    for inst in (ORDERS_A, ORDERS_B, ORDERS_C, PAYMENTS):
        registry.register(inst)

    result = run_cli("list", "orders", env=env)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "VERSION", "ADDRESS", "STATUS", "WEIGHT", "METADATA", "TTL"]
    assert [row.split()[:6] for row in rows] == [
        ["a", "v1", "10.0.0.1:8080", "enabled", "100", "zone=eu-1"],
        ["b", "v1", "10.0.0.2:8080", "disabled", "5", "-"],
        ["c", "v2", "10.0.0.3:8080", "enabled", "100", "-"],
    ]
    for column in ("ADDRESS", "STATUS", "TTL"):  # aligned: every cell starts under its header
        start = header.index(column)
        assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows), column
    for row in rows:
        ttl = row.split()[-1]
        assert ttl.endswith("s") and 0 < int(ttl[:-1]) <= 10


def test_list_shows_named_endpoints_when_an_instance_has_some(registry: Any, env: Dict[str, str]) -> None:
    registry.register(ORDERS_A)
    registry.register(Instance.new("orders", "v1", "10.0.0.4:8080", id="d",
                                   endpoints={"grpc": "10.0.0.4:50051", "https": Endpoint("10.0.0.4:8443", tls=True)}))
    result = run_cli("list", "orders", env=env)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "VERSION", "ADDRESS", "ENDPOINTS", "STATUS", "WEIGHT", "METADATA", "TTL"]
    assert [row.split()[:4] for row in rows] == [
        ["a", "v1", "10.0.0.1:8080", "-"],
        ["d", "v1", "10.0.0.4:8080", "grpc=10.0.0.4:50051,https=10.0.0.4:8443(tls)"],
    ]
    listed = json.loads(run_cli("list", "orders", "--json", env=env).stdout)
    assert listed[1]["endpoints"] == {"grpc": {"address": "10.0.0.4:50051", "tls": False},
                                      "https": {"address": "10.0.0.4:8443", "tls": True}}


def test_list_json_parses_and_filters_by_version(registry: Any, env: Dict[str, str]) -> None:
    for inst in (ORDERS_A, ORDERS_B, ORDERS_C):
        registry.register(inst)

    result = run_cli("list", "orders", "--version", "v1", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["id"] for d in data] == ["a", "b"]
    first = data[0]
    assert first["address"] == "10.0.0.1:8080"
    assert first["status"] == "enabled"
    assert first["metadata"] == {"zone": "eu-1"}
    assert first["weight"] == 100
    assert 0 < first["lease_ttl"] <= 10


def test_list_unknown_service_exits_1(env: Dict[str, str]) -> None:
    result = run_cli("list", "nosuch", env=env)
    assert result.returncode == 1
    assert "nosuch" in assert_one_line_error(result)


@pytest.mark.parametrize("argv", [["services", "--json"], ["list", "nosuch", "--json"],
                                  ["list", "nosuch", "--version", "v1", "--json"]], ids=" ".join)
def test_json_output_is_an_empty_array_when_nothing_matched(argv: List[str], env: Dict[str, str]) -> None:
    result = run_cli(*argv, env=env)
    assert json.loads(result.stdout) == []
    assert result.returncode == 1  # the documented status of "nothing matched" is kept
    assert "no " in assert_one_line_error(result)


@pytest.mark.parametrize(
    "argv",
    [
        ["services"],
        ["list", "orders"],
        ["watch", "orders"],
        ["register", "--service", "s", "--version", "v", "--address", "127.0.0.1:1"],
        ["deregister", "--service", "s", "--version", "v", "--id", "x"],
    ],
    ids=lambda argv: argv[0],
)
def test_unreachable_etcd_exits_3(argv: List[str]) -> None:
    env = cli_env([f"127.0.0.1:{free_port()}"], "unreachable", FYERREG_DIAL_TIMEOUT="1")
    result = run_cli(*argv, env=env)
    assert result.returncode == 3
    assert "unreachable" in assert_one_line_error(result)


def test_watch_prints_each_change_until_ctrl_c(registry: Any, env: Dict[str, str],
                                               procs: List[Proc]) -> None:
    registry.register(ORDERS_A)
    watch = cli_process("watch", "orders", "--json", env=env)
    procs.append(watch)

    present = next_json(watch)
    assert (present["event"], present["instance"]["id"]) == ("present", "a")

    registry.register(ORDERS_C)
    joined = next_json(watch)
    assert (joined["event"], joined["instance"]["id"], joined["instance"]["version"]) == ("joined", "c", "v2")
    assert joined["time"].endswith("Z") and joined["revision"] > present["revision"]

    registry.update_service(ORDERS_A.replace(status=Status.DISABLED, weight=7))
    changed = next_json(watch)
    assert changed["event"] == "changed"
    assert changed["changes"] == {"status": ["enabled", "disabled"], "weight": [100, 7]}

    registry.deregister(ORDERS_C)
    left = next_json(watch)
    assert (left["event"], left["instance"]["id"]) == ("left", "c")

    assert watch.stop(signal.SIGINT) == 0
    assert watch.rest() == []
    assert not any("Traceback" in line for line in watch.errors)


def test_watch_text_output(registry: Any, env: Dict[str, str], procs: List[Proc]) -> None:
    registry.register(ORDERS_A)
    watch = cli_process("watch", "orders", "--version", "v1", env=env)
    procs.append(watch)
    line = watch.next_line()
    assert line.split()[1:] == ["present", "orders/v1/a", "10.0.0.1:8080", "enabled", "weight=100",
                                "metadata=zone=eu-1"]
    registry.deregister(ORDERS_A)
    assert watch.next_line().split()[1:] == ["left", "orders/v1/a", "10.0.0.1:8080"]
    assert watch.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_register_keeps_the_instance_until_signalled_then_deregisters(
    registry: Any, env: Dict[str, str], procs: List[Proc], sig: int
) -> None:
    sidecar = cli_process("register", "--service", "legacy", "--version", "v3", "--address", "127.0.0.1:7000",
                         "--id", "side-1", "--weight", "30", "--meta", "lang=go", "tier=web", "--ttl", "5",
                         env=env)
    procs.append(sidecar)
    assert sidecar.next_line().startswith("registered legacy/v3/side-1 at 127.0.0.1:7000")

    [inst] = registry.list_services("legacy", "v3")
    assert (inst.id, inst.address, inst.weight) == ("side-1", "127.0.0.1:7000", 30)
    assert dict(inst.metadata) == {"lang": "go", "tier": "web"}

    assert sidecar.stop(sig) == 0
    assert sidecar.rest() == ["deregistered legacy/v3/side-1"]
    assert registry.list_services("legacy", "v3") == []  # removed at once, not after the TTL


def test_register_advertises_the_outbound_address_instead_of_0_0_0_0(
    registry: Any, env: Dict[str, str], procs: List[Proc]
) -> None:
    sidecar = cli_process("register", "--service", "anyhost", "--version", "v1", "--address", "0.0.0.0:7003",
                         "--id", "any-1", env=env)
    procs.append(sidecar)
    outbound = f"{outbound_ip()}:7003"
    assert sidecar.next_line().startswith(f"registered anyhost/v1/any-1 at {outbound}")
    [inst] = registry.list_services("anyhost", "v1")
    assert inst.address == outbound and not inst.address.startswith("0.0.0.0")
    assert sidecar.stop() == 0
    assert any(f"advertising {outbound}" in line for line in sidecar.errors)


def test_register_logs_json_lines_with_structured_extras(
    env: Dict[str, str], procs: List[Proc]
) -> None:
    sidecar = cli_process("register", "--service", "logged", "--version", "v1", "--address", "127.0.0.1:7001",
                         "--id", "log-1", "--log-format", "json", env=env)
    procs.append(sidecar)
    sidecar.next_line()
    assert sidecar.stop() == 0
    records = [json.loads(line) for line in sidecar.errors if line]
    assert records, "the sidecar logged nothing at info level"
    assert all({"timestamp", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(r["logger"].startswith("fyerreg") for r in records)
    ours = [r for r in records if r.get("instance_id") == "log-1"]
    assert ours and all(r["service"] == "logged" and r["version"] == "v1" for r in ours)


def test_deregister_removes_records_and_exits_1_when_absent(
    etcd_client: Any, namespace: str, env: Dict[str, str]
) -> None:
    # What operators remove: a crashed process's record whose lease has not expired yet,
    # and a record bound to no lease at all (Go's UpdateService leaves those forever).
    root = f"/{namespace}/services/payments/v1"
    lease = etcd_client.lease(60)
    etcd_client.put(f"{root}/p", PAYMENTS.to_json(), lease=lease)
    ghost = PAYMENTS.replace(id="ghost", address="10.0.0.8:9000")
    etcd_client.put(f"{root}/ghost", ghost.to_json())

    result = run_cli("deregister", "--service", "payments", "--version", "v1", "--id", "p", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deregistered payments/v1/p (10.0.0.9:9000)"
    assert "registers it again" in result.stderr  # it had a lease: a live owner would be back
    assert lease.remaining_ttl == -1  # revoked, not left to expire

    result = run_cli("deregister", "--service", "payments", "--version", "v1", "--id", "ghost", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deregistered payments/v1/ghost (10.0.0.8:9000)"
    assert result.stderr == ""
    assert run_cli("list", "payments", env=env).returncode == 1

    again = run_cli("deregister", "--service", "payments", "--version", "v1", "--id", "p", env=env)
    assert again.returncode == 1
    assert "payments/v1/p" in assert_one_line_error(again)


def test_etcd_runs_a_development_server_until_ctrl_c(tmp_path: Any, procs: List[Proc]) -> None:
    data_dir = tmp_path / "etcd-data"
    server = cli_process("etcd", "--port", "0", "--data-dir", str(data_dir), env=cli_env([], "unused"))
    procs.append(server)
    first = server.next_line(timeout=60)
    assert first.startswith("etcd listening on http://127.0.0.1:")
    endpoint = first.split("http://", 1)[1].split()[0]

    result = run_cli("services", env=cli_env([endpoint], "fresh"))
    assert result.returncode == 1  # reachable and empty, not 3
    assert "no services" in result.stderr

    assert server.stop(signal.SIGINT) == 0
    assert server.rest()[-1] == "etcd stopped"
    assert (data_dir / "member").is_dir()  # a given data dir is kept
    assert run_cli("services", env=cli_env([endpoint], "fresh", FYERREG_DIAL_TIMEOUT="1")).returncode == 3


def test_wrong_password_exits_3_and_the_right_one_from_the_environment_works(etcd_server: Any) -> None:
    enable_auth(etcd_server.endpoints, root_password="rootpw", timeout=TIMEOUT)
    env = cli_env(etcd_server.endpoints, "auth", FYERREG_USER="root")

    wrong = run_cli("services", "--password", "nope", env=env)
    assert wrong.returncode == 3
    assert "credentials" in assert_one_line_error(wrong)
    assert "nope" not in wrong.stderr

    right = run_cli("services", env=dict(env, FYERREG_PASSWORD="rootpw"))
    assert right.returncode == 1, right.stderr  # authenticated; nothing registered
    assert "no services" in right.stderr
