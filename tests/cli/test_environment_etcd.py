"""The fyerreg command configured by the environment alone, against a real etcd (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from fyerreg.registry.etcd.registry import lease_seconds
from fyerreg.testing import EtcdServer, enable_auth
from tests.helpers import Proc

from .support import TIMEOUT, assert_one_line_error, cli_env, cli_process, run_cli

pytestmark = pytest.mark.etcd


def test_a_password_file_authenticates_the_command(etcd_server: EtcdServer, tmp_path: Path) -> None:
    enable_auth(etcd_server.endpoints, root_password="root pw", timeout=TIMEOUT)
    secret = tmp_path / "password"
    secret.write_text("root pw\n")
    env = cli_env(etcd_server.endpoints, "auth", FYERREG_USERNAME="root", FYERREG_PASSWORD_FILE=str(secret))
    right = run_cli("services", env=env)
    assert right.returncode == 1, right.stderr  # authenticated; nothing registered
    assert "no services" in right.stderr

    secret.write_text("wrong pw\n")
    wrong = run_cli("services", env=env)
    assert wrong.returncode == 3
    assert "credentials" in assert_one_line_error(wrong)
    assert "wrong pw" not in wrong.stderr

    unreadable = run_cli("services", env=dict(env, FYERREG_PASSWORD_FILE=str(tmp_path / "nope")))
    assert unreadable.returncode == 2
    assert f"FYERREG_PASSWORD_FILE='{tmp_path / 'nope'}'" in assert_one_line_error(unreadable)


def test_register_takes_its_lease_ttl_and_advertised_host_from_the_environment(
    registry: Any, env: Dict[str, str], etcd_client: Any, namespace: str, procs: List[Proc]
) -> None:
    sidecar = cli_process("register", "--service", "legacy", "--version", "v3", "--address", "0.0.0.0:7000",
                          "--id", "side-1", env=dict(env, FYERREG_TTL="6", POD_IP="10.1.2.3"))
    procs.append(sidecar)
    assert sidecar.next_line().startswith("registered legacy/v3/side-1 at 10.1.2.3:7000")
    assert any("advertising 10.1.2.3:7000 ($POD_IP)" in line for line in sidecar.errors)
    value, meta = etcd_client.get(f"/{namespace}/services/legacy/v3/side-1")
    assert json.loads(value)["address"] == "10.1.2.3:7000"
    assert etcd_client.get_lease_info(meta.lease_id).grantedTTL == lease_seconds(6)
    assert sidecar.stop() == 0


def test_register_with_a_dialable_address_ignores_fyerreg_advertise_address(
    registry: Any, env: Dict[str, str], procs: List[Proc]
) -> None:
    sidecar = cli_process("register", "--service", "legacy", "--version", "v3", "--address", "127.0.0.1:7000",
                          "--id", "side-1", env=dict(env, FYERREG_ADVERTISE_ADDRESS="elsewhere:1"))
    procs.append(sidecar)
    assert sidecar.next_line().startswith("registered legacy/v3/side-1 at 127.0.0.1:7000")
    assert [i.address for i in registry.list_services("legacy")] == ["127.0.0.1:7000"]
    assert sidecar.stop() == 0


@pytest.mark.parametrize(("variable", "value"), [("POD_IP", "bogus"), ("FYERREG_ADVERTISE_ADDRESS", "0.0.0.0"),
                                                 ("FYERREG_TTL", "abc")])
def test_register_refuses_a_malformed_variable_with_exit_2_before_registering(
    registry: Any, env: Dict[str, str], variable: str, value: str
) -> None:
    result = run_cli("register", "--service", "legacy", "--version", "v3", "--address", "0.0.0.0:7000",
                     env=dict(env, **{variable: value}))
    assert result.returncode == 2
    assert f"{variable}='{value}'" in assert_one_line_error(result)
    assert registry.list_services("legacy") == []
