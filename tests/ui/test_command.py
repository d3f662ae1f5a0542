"""``fyerreg ui`` as a command: where it may listen, what it prints (never the token), how it ends."""

from __future__ import annotations

import re
import signal
import time
from typing import Any, Dict, List

import pytest

from tests.cli.support import assert_one_line_error, cli_env, cli_process, run_cli
from tests.helpers import free_port, make_instance, wait_until

from .support import get, get_json, service_of

TOKEN = "s3cret-token-0123456789"
_URL = re.compile(r"at (http://\S+/)")


@pytest.fixture
def env(etcd_endpoints: List[str], namespace: str) -> Dict[str, str]:
    return cli_env(etcd_endpoints, namespace)


def _port(line: str) -> int:
    match = _URL.search(line)
    assert match, line
    return int(match.group(1).rsplit(":", 1)[1].rstrip("/"))


def test_binding_beyond_loopback_without_a_token_is_refused_before_connecting() -> None:
    # etcd is unreachable here: the refusal comes first, as a usage error.
    env = cli_env(["127.0.0.1:1"], "none")
    result = run_cli("ui", "--bind", "0.0.0.0:0", env=env)
    assert result.returncode == 2
    line = assert_one_line_error(result)
    assert "0.0.0.0:0 is reachable from other hosts" in line and "token" in line


def test_a_short_token_is_refused_and_not_repeated() -> None:
    result = run_cli("ui", "--bind", "0.0.0.0:0", env=cli_env(["127.0.0.1:1"], "none",
                                                               FYERREG_UI_TOKEN="tiny-secret"))
    assert result.returncode == 2
    line = assert_one_line_error(result)
    assert "at least 16 characters" in line and "tiny-secret" not in line


def test_a_port_in_use_ends_the_command_with_one_line(env: Dict[str, str], procs: List[Any]) -> None:
    first = cli_process("ui", "--bind", "127.0.0.1:0", env=env)
    procs.append(first)
    port = _port(first.wait_for("dashboard of namespace"))
    result = run_cli("ui", "--bind", f"127.0.0.1:{port}", env=env)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in assert_one_line_error(result)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_the_namespace_until_a_signal_ends_it_cleanly(
        env: Dict[str, str], registry: Any, procs: List[Any], signum: int) -> None:
    registry.register(make_instance("o-1", service="orders", port=9001))
    proc = cli_process("ui", "--bind", "127.0.0.1:0", env=env)
    procs.append(proc)
    port = _port(proc.wait_for("dashboard of namespace"))
    state = get_json(port, "/api/state")
    assert [i["id"] for i in (service_of(state, "orders") or {})["instances"]] == ["o-1"]
    started = time.monotonic()
    assert proc.stop(signum, timeout=15) == 0
    assert time.monotonic() - started < 10
    assert not [line for line in proc.errors if "Traceback" in line], proc.output()


def test_with_a_token_it_listens_beyond_loopback_and_never_prints_or_logs_the_token(
        env: Dict[str, str], procs: List[Any]) -> None:
    port = free_port()
    proc = cli_process("ui", "--bind", f"0.0.0.0:{port}", "--log-level", "debug",
                       env=dict(env, FYERREG_UI_TOKEN=TOKEN))
    procs.append(proc)
    line = proc.wait_for("dashboard of namespace")
    assert "?token=<the token>" in line
    assert get(port, "/api/state")[0] == 401
    assert get(port, f"/?token={TOKEN}")[0] == 303
    assert get(port, "/api/state", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    wait_until(lambda: any("/api/state" in error for error in proc.errors), timeout=5)  # requests are logged
    assert proc.stop(signal.SIGTERM, timeout=15) == 0
    assert TOKEN not in proc.output()
