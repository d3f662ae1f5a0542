"""``--json`` on every command that prints data: stdout parses with json.loads (``[]`` when nothing matched)."""

from __future__ import annotations

import importlib.metadata
import json
import signal
from typing import Any, Dict, List

import pytest

from fyerreg.cli import _COMMANDS
from fyerreg.cli._parser import build_parser, package_version
from fyerreg.naming import Instance
from tests.helpers import Proc

from .support import cli_env, cli_process, next_json, run_cli

ORDERS = Instance.new("orders", "v1", "10.0.0.1:8080", id="a", metadata={"zone": "eu-1"})
# Commands that print no data of their own (a web page, a switch) are not in this list.
DATA_COMMANDS = ("services", "list", "watch", "register", "deregister", "etcd", "doctor", "maint")


def test_every_data_command_accepts_json() -> None:
    parser = build_parser(_COMMANDS)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name in DATA_COMMANDS:
        options = {s for a in subparsers.choices[name]._actions for s in a.option_strings}  # type: ignore[attr-defined]
        assert "--json" in options, name


@pytest.mark.parametrize("argv", [
    ["services", "--json"], ["list", "orders", "--json"], ["deregister", "--service", "orders", "--version", "v1",
                                                           "--id", "a", "--json"],
], ids=" ".join)
def test_nothing_matched_is_an_empty_array(argv: List[str], env: Dict[str, str]) -> None:
    result = run_cli(*argv, env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout) == []


def test_deregister_json_is_the_array_of_the_instance_removed(registry: Any, env: Dict[str, str]) -> None:
    registry.register(ORDERS)
    result = run_cli("deregister", "--service", "orders", "--version", "v1", "--id", "a", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [removed] = json.loads(result.stdout)
    assert (removed["id"], removed["address"], removed["status"]) == ("a", "10.0.0.1:8080", "enabled")


def test_register_json_is_one_object_per_event(registry: Any, env: Dict[str, str], procs: List[Proc]) -> None:
    sidecar = cli_process("register", "--service", "side", "--version", "v1", "--address", "127.0.0.1:7100",
                          "--id", "s-1", "--json", env=env)
    procs.append(sidecar)
    registered = next_json(sidecar)
    assert registered["event"] == "registered"
    assert registered["instance"]["id"] == "s-1" and registered["instance"]["address"] == "127.0.0.1:7100"
    assert [i.id for i in registry.list_services("side", "v1")] == ["s-1"]

    assert sidecar.stop(signal.SIGTERM) == 0
    [deregistered] = [json.loads(line) for line in sidecar.rest()]
    assert deregistered["event"] == "deregistered" and deregistered["instance"]["id"] == "s-1"


def test_watch_json_is_one_object_per_line(registry: Any, env: Dict[str, str], procs: List[Proc]) -> None:
    registry.register(ORDERS)
    watch = cli_process("watch", "orders", "--json", env=env)
    procs.append(watch)
    present = next_json(watch)
    assert (present["event"], present["instance"]["id"]) == ("present", "a")
    registry.deregister(ORDERS)
    left = next_json(watch)
    assert (left["event"], left["instance"]["id"]) == ("left", "a")


def test_doctor_json_is_an_array_of_checks(registry: Any, env: Dict[str, str]) -> None:
    registry.register(ORDERS)
    result = run_cli("doctor", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(result.stdout)
    assert [c["check"] for c in checks] == ["connect", "auth", "namespace", "records", "clock", "lease-ttl"]
    assert all({"status", "message"} <= c.keys() for c in checks)


def test_etcd_json_says_where_it_listens_then_that_it_stopped(procs: List[Proc]) -> None:
    server = cli_process("etcd", "--port", "0", "--json", env=cli_env([], "unused"))
    procs.append(server)
    listening = next_json(server, timeout=60)
    assert listening["event"] == "listening"
    assert listening["client_url"] == f"http://{listening['endpoint']}"
    assert run_cli("services", "--json", env=cli_env([listening["endpoint"]], "fresh")).stdout.strip() == "[]"

    assert server.stop(signal.SIGINT) == 0
    assert [json.loads(line) for line in server.rest()] == [{"event": "stopped"}]


def test_version_falls_back_to_the_packages_own_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import fyerreg

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert package_version() == fyerreg.__version__


def test_version_prints_fyerreg_and_the_version_as_a_subprocess() -> None:
    result = run_cli("--version", env=cli_env([], "unused"))
    assert result.returncode == 0
    assert result.stdout.strip() == f"fyerreg {importlib.metadata.version('fyerreg')}"
