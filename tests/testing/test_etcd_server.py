"""EtcdServer: a real etcd process that tests start, break and restore on demand."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pyetcd
import pytest

from fyerreg.errors import FyerregError, RegistryError
from fyerreg.testing import EtcdServer, EtcdServerError, raw_client
from tests.helpers import etcd_pids, process_alive


def _put(endpoints: List[str], key: str, value: str) -> None:
    client = raw_client(endpoints)
    try:
        client.put(key, value)
    finally:
        client.close()


def _get(endpoints: List[str], key: str, timeout: float = 5.0) -> Optional[bytes]:
    client = raw_client(endpoints, timeout=timeout)
    try:
        value: Optional[bytes] = client.get(key)[0]
        return value
    finally:
        client.close()


@pytest.fixture
def new_server() -> Iterator[EtcdServer]:
    """An EtcdServer not started yet; closed after the test."""
    server = EtcdServer()
    try:
        yield server
    finally:
        server.close()


def test_session_etcd_answers_put_and_get(
    etcd_endpoints: List[str], etcd_client: pyetcd.MultiEndpointEtcd3Client
) -> None:
    etcd_client.put("/fyerreg-test/session", "hello")
    assert etcd_client.get("/fyerreg-test/session")[0] == b"hello"
    assert _get(etcd_endpoints, "/fyerreg-test/session") == b"hello"


def test_private_server_addresses(etcd_server: EtcdServer) -> None:
    assert etcd_server.endpoint == f"127.0.0.1:{etcd_server.client_port}"
    assert etcd_server.endpoints == [etcd_server.endpoint]
    assert etcd_server.client_url == f"http://{etcd_server.endpoint}"
    assert etcd_server.is_running and not etcd_server.is_paused
    assert etcd_server.healthy()
    assert os.path.isdir(etcd_server.data_dir)


def test_restart_keeps_data_ports_and_data_dir(etcd_server: EtcdServer) -> None:
    _put(etcd_server.endpoints, "/k", "v1")
    endpoint, data_dir, pid = etcd_server.endpoint, etcd_server.data_dir, etcd_server.pid
    etcd_server.restart()
    assert etcd_server.pid != pid
    assert (etcd_server.endpoint, etcd_server.data_dir) == (endpoint, data_dir)
    assert _get(etcd_server.endpoints, "/k") == b"v1"


def test_kill_then_start_keeps_data(etcd_server: EtcdServer) -> None:
    _put(etcd_server.endpoints, "/k", "v1")
    pid = etcd_server.pid
    assert pid is not None
    etcd_server.kill()
    assert not etcd_server.is_running
    assert etcd_server.pid is None
    assert not process_alive(pid)
    with pytest.raises(pyetcd.Etcd3Exception):
        _get(etcd_server.endpoints, "/k", timeout=1)
    etcd_server.start()
    assert _get(etcd_server.endpoints, "/k") == b"v1"


def test_wipe_restores_an_empty_etcd(etcd_server: EtcdServer) -> None:
    _put(etcd_server.endpoints, "/k", "v1")
    etcd_server.wipe()
    assert not etcd_server.is_running
    assert os.listdir(etcd_server.data_dir) == []
    etcd_server.start()
    assert _get(etcd_server.endpoints, "/k") is None


def test_pause_freezes_and_resume_thaws(etcd_server: EtcdServer) -> None:
    _put(etcd_server.endpoints, "/k", "v1")
    etcd_server.pause()
    assert etcd_server.is_paused and etcd_server.is_running
    assert not etcd_server.healthy(timeout=0.3)
    with pytest.raises(pyetcd.Etcd3Exception):
        _get(etcd_server.endpoints, "/k", timeout=0.5)
    etcd_server.resume()
    assert not etcd_server.is_paused
    assert _get(etcd_server.endpoints, "/k") == b"v1"


def test_stop_ends_a_paused_server(etcd_server: EtcdServer) -> None:
    pid = etcd_server.pid
    assert pid is not None
    etcd_server.pause()
    etcd_server.stop(timeout=5)
    assert not etcd_server.is_running
    assert not process_alive(pid)


def test_pause_of_a_stopped_server_is_an_error(etcd_server: EtcdServer) -> None:
    etcd_server.stop()
    with pytest.raises(EtcdServerError, match="not running"):
        etcd_server.pause()


def test_close_stops_etcd_and_removes_its_temp_dir() -> None:
    server = EtcdServer()
    server.start()
    pid, data_dir = server.pid, server.data_dir
    assert pid is not None and etcd_pids(server.client_url) == [pid]
    server.close()
    assert not process_alive(pid)
    assert not os.path.exists(data_dir)
    assert not os.path.exists(os.path.dirname(server.log_path))
    server.close()  # idempotent
    with pytest.raises(EtcdServerError, match="closed"):
        server.start()


def test_context_manager_starts_and_closes() -> None:
    with EtcdServer() as server:
        assert server.healthy()
        pid = server.pid
        assert pid is not None
    assert not process_alive(pid)
    assert not os.path.exists(server.data_dir)


def test_caller_given_dirs_are_kept(tmp_path: Path) -> None:
    data_dir, log_dir = str(tmp_path / "data"), str(tmp_path / "logs")
    with EtcdServer(data_dir=data_dir, log_dir=log_dir) as server:
        _put(server.endpoints, "/k", "v1")
    assert os.listdir(data_dir)
    with open(server.log_path) as f:
        assert f.read().strip(), "etcd's output was not written to the log in log_dir"
    with EtcdServer(data_dir=data_dir, log_dir=log_dir) as again:
        assert _get(again.endpoints, "/k") == b"v1"


def test_etcd_output_never_reaches_stdout(capfd: pytest.CaptureFixture[str], etcd_server: EtcdServer) -> None:
    etcd_server.restart()
    out, err = capfd.readouterr()
    assert "etcd" not in out + err
    assert etcd_server.log_tail().strip(), "etcd's output went nowhere"


def test_start_failure_reports_etcd_output() -> None:
    server = EtcdServer(extra_args=["--no-such-flag"])
    try:
        with pytest.raises(EtcdServerError, match="no-such-flag") as info:
            server.start(timeout=10)
        assert isinstance(info.value, FyerregError) and not isinstance(info.value, RegistryError)
        assert server.log_path in str(info.value)
        assert not server.is_running
    finally:
        server.close()


def test_etcd_variables_in_the_environment_do_not_break_start(
    monkeypatch: pytest.MonkeyPatch, new_server: EtcdServer
) -> None:
    monkeypatch.setenv("ETCD_NAME", "conflicting")
    new_server.start()
    assert new_server.healthy()


def test_ports_we_chose_are_rechosen_when_taken_before_the_first_start(new_server: EtcdServer) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", new_server.client_port))
        squatter.listen()
        taken = new_server.client_port
        new_server.start()
        assert new_server.client_port != taken
        assert new_server.healthy()


def test_a_given_port_in_use_fails_start_naming_the_cause() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = EtcdServer(client_port=squatter.getsockname()[1])
        try:
            with pytest.raises(EtcdServerError, match="address already in use"):
                server.start(timeout=1)
            assert not server.is_running
        finally:
            server.close()


def test_start_waits_for_a_port_that_is_briefly_in_use() -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    server = EtcdServer(client_port=squatter.getsockname()[1])
    release = threading.Timer(0.5, squatter.close)
    release.start()
    try:
        server.start(timeout=30)
        assert server.healthy()
    finally:
        release.cancel()
        release.join()
        squatter.close()
        server.close()


def test_bad_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="extra_args"):
        EtcdServer(extra_args="--foo")
    with pytest.raises(ValueError, match="initial_cluster_state"):
        EtcdServer(initial_cluster_state="old")


@pytest.mark.slow
def test_members_form_a_cluster() -> None:
    members = [EtcdServer(name=f"member-{i}") for i in range(3)]
    try:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
        for member in members:
            member.initial_cluster = cluster
            member.start(wait=False)
        for member in members:
            member.wait_healthy()
        _put(members[0].endpoints, "/k", "replicated")
        client = raw_client(members[2].endpoints)
        try:
            assert len(list(client.members)) == 3
            assert client.get("/k")[0] == b"replicated"
        finally:
            client.close()
    finally:
        for member in members:
            member.close()


def test_a_server_nobody_closed_is_killed_when_python_exits(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from fyerreg.testing import EtcdServer\n"
        "server = EtcdServer()\n"
        "server.start()\n"
        "json.dump({'pid': server.pid, 'data_dir': server.data_dir}, sys.stdout)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert not process_alive(info["pid"])
    assert not os.path.exists(info["data_dir"])


def test_ports_chosen_together_differ_and_avoid_the_ones_given() -> None:
    from fyerreg.testing._host import fill_ports

    taken = fill_ports("127.0.0.1", [None])
    chosen = fill_ports("127.0.0.1", [taken[0], *[None] * 40])
    assert chosen[0] == taken[0] and len(set(chosen)) == 41
    for _ in range(50):
        server = EtcdServer()
        server.close()
        assert server.client_port != server.peer_port
    given = EtcdServer(client_port=taken[0])
    given.close()
    assert given.peer_port != taken[0]
