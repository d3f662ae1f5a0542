"""``fyerreg etcd`` when it cannot run as asked: a port in use, an etcd that dies."""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import time
from typing import Any, Iterator, List

import pytest

from fyerreg.testing import EtcdPortInUseError, EtcdServer
from tests.helpers import Proc, etcd_pids, wait_until

from .support import assert_one_line_error, cli_env, cli_process, run_cli

# The bug this bounds: 30 s of etcd restarting in a loop before any word.
AT_ONCE = 10.0


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something that is not etcd listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]



def _assert_port_in_use_at_once(port: int) -> None:
    began = time.monotonic()
    result = run_cli("etcd", "--port", str(port), env=cli_env([], "unused"))
    assert time.monotonic() - began < AT_ONCE
    assert result.returncode == 1
    line = assert_one_line_error(result)
    assert "address already in use" in line and f"127.0.0.1:{port}" in line
    assert result.stdout == ""  # never "etcd listening on ...": that is the other one


def test_etcd_on_a_port_another_etcd_holds_says_address_in_use_at_once(etcd_server: EtcdServer) -> None:
    _assert_port_in_use_at_once(etcd_server.client_port)


def test_etcd_on_a_port_another_program_holds_says_address_in_use_at_once(listener: int) -> None:
    _assert_port_in_use_at_once(listener)


def test_an_etcd_server_told_to_use_a_taken_port_raises_at_once(listener: int) -> None:
    server = EtcdServer(client_port=listener)
    try:
        began = time.monotonic()
        with pytest.raises(EtcdPortInUseError, match="address already in use"):
            server.start()
        assert time.monotonic() - began < AT_ONCE
        assert not server.is_running
    finally:
        server.close()


def test_an_etcd_that_dies_is_reported_with_its_last_words_not_a_deleted_log(
    procs: List[Proc],
) -> None:
    server = cli_process("etcd", "--port", "0", env=cli_env([], "unused"))
    procs.append(server)
    url = server.next_line(timeout=60).split()[3]
    assert url.startswith("http://127.0.0.1:")
    [pid] = wait_until(lambda: etcd_pids(url), message="etcd runs")
    os.kill(pid, signal.SIGKILL)

    assert server.wait(30) == 1
    [line] = server.errors
    assert line.startswith("fyerreg: etcd exited unexpectedly; etcd's last output: ")
    for path in re.findall(re.escape(tempfile.gettempdir()) + r"/[^\s;,()]+", line):
        assert os.path.exists(path), f"the message names {path}, which does not exist"


def test_an_etcd_that_cannot_start_is_reported_in_one_line_with_its_last_words(tmp_path: Any) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where etcd's data dir should be")
    result = run_cli("etcd", "--port", "0", "--data-dir", str(not_a_dir), env=cli_env([], "unused"))
    assert result.returncode == 1
    line = assert_one_line_error(result)
    assert "did not start; etcd's last output: " in line
    assert str(not_a_dir) in line  # etcd's own words about what is wrong
    assert ".log" not in line  # no log file named: it is removed on exit
    assert result.stdout == ""
