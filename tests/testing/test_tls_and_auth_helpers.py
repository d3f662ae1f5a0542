"""Throwaway certificates, an etcd serving TLS with client-certificate auth, and enable_auth."""

from __future__ import annotations

import contextlib
import os
import ssl
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from fyerreg.testing import (
    Certificates,
    EtcdServer,
    TLSEtcdServer,
    enable_auth,
    make_certificates,
    prefix_range_end,
    raw_client,
)

pytest.importorskip("cryptography")


def _https_health(url: str, context: ssl.SSLContext) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(url + "/health", timeout=5) as resp:
        body: bytes = resp.read()
        return body


def _context(ca: str, certs: Certificates, *, with_client_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if with_client_cert:
        context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(str(tmp_path / "pki"))


@pytest.fixture
def tls_server(certs: Certificates) -> Iterator[TLSEtcdServer]:
    with TLSEtcdServer(certs) as server:
        yield server


def test_certificates_are_pem_files_with_private_keys(certs: Certificates, tmp_path: Path) -> None:
    for path in (certs.ca, certs.server_cert, certs.client_cert):
        assert Path(path).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for path in (certs.server_key, certs.client_key):
        assert Path(path).read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert certs.client_tls() == {"ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}
    other = make_certificates(str(tmp_path / "other"))
    assert Path(other.ca).read_bytes() != Path(certs.ca).read_bytes()


def test_tls_endpoint_verifies_with_the_ca_and_the_client_certificate(
    tls_server: TLSEtcdServer, certs: Certificates
) -> None:
    assert tls_server.tls_endpoint.startswith("https://127.0.0.1:")
    assert tls_server.healthy()  # the plaintext endpoint stays for setup and health checks
    assert b'"health":"true"' in _https_health(tls_server.tls_endpoint, _context(certs.ca, certs))


def test_tls_endpoint_refuses_another_ca_and_a_client_without_certificate(
    tls_server: TLSEtcdServer, certs: Certificates, tmp_path: Path
) -> None:
    stranger = make_certificates(str(tmp_path / "stranger"))
    with pytest.raises(urllib.error.URLError) as wrong_ca:
        _https_health(tls_server.tls_endpoint, _context(stranger.ca, certs))
    assert isinstance(wrong_ca.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _https_health(tls_server.tls_endpoint, _context(certs.ca, certs, with_client_cert=False))


def test_prefix_range_end() -> None:
    assert prefix_range_end(b"/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\x00"


def test_enable_auth_confines_users_to_their_prefix(etcd_server: EtcdServer) -> None:
    enable_auth(etcd_server.endpoints, root_password="root-pw", users={"alice": ("alice-pw", "/a/")})

    with pytest.raises(grpc.RpcError):
        raw_client(etcd_server.endpoints, user="alice", password="wrong")
    with contextlib.closing(raw_client(etcd_server.endpoints)) as anonymous, pytest.raises(grpc.RpcError):
        anonymous.get("/a/x")

    with contextlib.closing(raw_client(etcd_server.endpoints, user="alice", password="alice-pw")) as alice:
        alice.put("/a/x", "mine")
        assert alice.get("/a/x")[0] == b"mine"
        with pytest.raises(grpc.RpcError) as denied:
            alice.put("/b/x", "theirs")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError):
            alice.get("/b/x")

    with contextlib.closing(raw_client(etcd_server.endpoints, user="root", password="root-pw")) as root:
        root.put("/b/x", "root may")
        assert root.get("/b/x")[0] == b"root may"
