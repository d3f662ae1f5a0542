"""TLS to etcd: a server-verified and a mutually authenticated connection."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import pytest

from fyerreg import RegistryUnavailableError
from fyerreg.testing import EtcdServer
from tests.helpers import ids, next_snapshot

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd


def _pem_pair(tmp: Path, name: str, subject: str, *, issuer: Optional[Tuple[Any, Any]] = None,
              ca: bool = False) -> Tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name_ = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(name_)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else name_)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Tuple[EtcdServer, str, Path]]:
    """An etcd serving plaintext (its health check) and, on another port, TLS requiring client certificates."""
    pytest.importorskip("cryptography")
    ca = _pem_pair(tmp_path, "ca", "fyerreg test CA", ca=True)
    _pem_pair(tmp_path, "server", "127.0.0.1", issuer=ca)
    _pem_pair(tmp_path, "client", "fyerreg", issuer=ca)
    port = _free_port()
    server = EtcdServer()
    server.extra_args = [
        "--listen-client-urls", f"{server.client_url},https://127.0.0.1:{port}",
        "--cert-file", str(tmp_path / "server.pem"), "--key-file", str(tmp_path / "server-key.pem"),
        "--client-cert-auth", "--trusted-ca-file", str(tmp_path / "ca.pem"),
    ]
    with server:
        yield server, f"https://127.0.0.1:{port}", tmp_path


def test_mutual_tls_registers_and_watches(tls_server, registries):
    _, endpoint, certs = tls_server
    tls = {"ca": str(certs / "ca.pem"), "cert": str(certs / "client.pem"), "key": str(certs / "client-key.pem")}
    registry = registries.new(endpoints=[endpoint], tls=tls)
    sub = registry.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    registry.register(make_instance("secure"))
    assert ids(next_snapshot(sub)) == ["secure"]
    assert ids(registry.list_services(SERVICE)) == ["secure"]


def test_tls_without_the_client_certificate_the_server_demands_is_refused(tls_server, registries):
    _, endpoint, certs = tls_server
    with pytest.raises(RegistryUnavailableError, match=endpoint.split("//")[1]):
        registries.new(endpoints=[endpoint], tls={"ca": str(certs / "ca.pem")}, dial_timeout=1.5)
