"""gRPC's native log lines: quiet (ERROR) by default in the CLI, the integrations and after
``fyerreg.logging.configure``, a ``GRPC_VERBOSITY`` the user set kept, and an etcd whose TLS
certificate is not trusted reported once, as one fyerreg error naming the CA."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Dict, Iterator

import pytest

from fyerreg import _grpc_quiet
from fyerreg.testing import Certificates, TLSEtcdServer
from tests.helpers import new_certificates

pytestmark = pytest.mark.etcd

TIMEOUT = 60.0
DIAL_TIMEOUT = "2"
NATIVE_LINE = "Handshake failed"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Another CA: etcd's certificate is not signed by it."""
    return new_certificates(tmp_path_factory, "stranger")


@pytest.fixture(scope="module")
def tls_server(certs: Certificates) -> Iterator[TLSEtcdServer]:
    """etcd serving TLS to any client (no client certificate asked for)."""
    with TLSEtcdServer(certs, client_cert_auth=False) as server:
        yield server


def _env(**extra: str) -> Dict[str, str]:
    """This environment without GRPC_VERBOSITY (the test process may have it set) or FYERREG_ variables."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY" and not k.startswith("FYERREG_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def _run(args: list, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)


def _cli(server: TLSEtcdServer, ca: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return _run(["-m", "fyerreg", "--endpoints", server.tls_endpoint, "--cacert", ca, "--dial-timeout", DIAL_TIMEOUT,
                 "services"], env)


def _script(body: str, server: TLSEtcdServer, ca: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``body`` then a connection to ``server`` trusting ``ca`` whose error the script prints once."""
    connect = textwrap.dedent(_CONNECT_AND_REPORT).format(endpoint=server.tls_endpoint, ca=ca, dial=DIAL_TIMEOUT)
    return _run(["-c", textwrap.dedent(body) + connect], env)


_CONNECT_AND_REPORT = """
    from fyerreg.errors import RegistryUnavailableError
    from fyerreg.registry.etcd import EtcdRegistry
    try:
        EtcdRegistry(endpoints=[{endpoint!r}], tls={{"ca": {ca!r}}}, dial_timeout={dial})
    except RegistryUnavailableError as exc:
        print("app: etcd:", exc, file=sys.stderr)
"""


def test_the_cli_prints_one_error_naming_the_ca_and_no_native_grpc_lines(
    tls_server: TLSEtcdServer, stranger: Certificates
) -> None:
    result = _cli(tls_server, stranger.ca, _env())

    assert result.returncode == 3
    assert NATIVE_LINE not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fyerreg: ")
    assert "TLS certificate is not trusted" in lines[0]
    assert stranger.ca in lines[0]


def test_a_library_script_calling_configure_sees_no_native_grpc_lines(
    tls_server: TLSEtcdServer, stranger: Certificates
) -> None:
    result = _script("""
        import sys
        import fyerreg.logging
        fyerreg.logging.configure(json=False, level="INFO")
    """, tls_server, stranger.ca, _env())

    assert NATIVE_LINE not in result.stderr
    reports = [line for line in result.stderr.splitlines() if line.startswith("app: etcd:")]
    assert len(reports) == 1, result.stderr
    assert "TLS certificate is not trusted" in reports[0] and stranger.ca in reports[0]


def test_an_integration_importing_grpc_first_still_sees_no_native_grpc_lines(
    tls_server: TLSEtcdServer, stranger: Certificates
) -> None:
    # fyerreg.contrib.grpc imports grpc itself, before any registry exists.
    result = _script("""
        import sys
        import fyerreg.contrib.grpc
        assert "grpc" in sys.modules
    """, tls_server, stranger.ca, _env())

    assert result.returncode == 0, result.stderr
    assert NATIVE_LINE not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("app: etcd:")]) == 1


@pytest.mark.parametrize("level", ["INFO", "info"])
def test_a_grpc_verbosity_the_user_set_is_kept(level: str, tls_server: TLSEtcdServer, stranger: Certificates) -> None:
    cli = _cli(tls_server, stranger.ca, _env(GRPC_VERBOSITY=level))
    assert NATIVE_LINE in cli.stderr
    assert cli.stderr.splitlines()[-1].startswith("fyerreg: ")

    script = _script("""
        import os, sys
        import fyerreg.logging
        fyerreg.logging.configure(json=False)
        assert os.environ["GRPC_VERBOSITY"] == {level!r}
    """.replace("{level!r}", repr(level)), tls_server, stranger.ca, _env(GRPC_VERBOSITY=level))
    assert script.returncode == 0, script.stderr
    assert NATIVE_LINE in script.stderr


def test_an_empty_grpc_verbosity_counts_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "")
    assert _grpc_quiet.quiet_grpc() is False
    assert os.environ["GRPC_VERBOSITY"] == ""


def test_once_grpc_is_loaded_nothing_is_set_and_a_debug_line_says_how_to_quiet_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import grpc  # noqa: F401  (loaded: too late for the variable)

    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.setattr(_grpc_quiet, "_told", False)
    with caplog.at_level("DEBUG", logger="fyerreg.grpc"):
        assert _grpc_quiet.quiet_grpc() is False
        assert _grpc_quiet.quiet_grpc() is False
    assert "GRPC_VERBOSITY" not in os.environ
    [record] = caplog.records
    assert "GRPC_VERBOSITY=ERROR in the environment" in record.getMessage()


def test_grpc_imported_before_fyerreg_keeps_its_native_lines_as_the_readme_says(
    tls_server: TLSEtcdServer, stranger: Certificates
) -> None:
    # grpcio reads the variable when its core loads and has no call to change the level later.
    result = _script("""
        import sys
        import grpc
        import fyerreg.logging
        fyerreg.logging.configure(json=False)
    """, tls_server, stranger.ca, _env())
    assert NATIVE_LINE in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("app: etcd:")]) == 1
