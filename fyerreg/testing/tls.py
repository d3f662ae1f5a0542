"""Throwaway certificates and an etcd serving TLS, for tests of encrypted and mutually authenticated connections.

Needs the ``cryptography`` package (in fyerreg's ``test`` extra), imported only when
certificates are made.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._host import fill_ports
from .server import EtcdServer

__all__ = ["Certificates", "make_certificates", "TLSEtcdServer"]


@dataclasses.dataclass(frozen=True)
class Certificates:
    """PEM files (paths) of a throwaway CA and a server and a client certificate it signed."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def client_tls(self) -> Dict[str, str]:
        """``{"ca": ..., "cert": ..., "key": ...}``: what a client presents for mutual TLS."""
        return {"ca": self.ca, "cert": self.client_cert, "key": self.client_key}


def make_certificates(
    directory: str,
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"),
    client_name: str = "fyerreg-client",
    valid_for: datetime.timedelta = datetime.timedelta(days=1),
) -> Certificates:
    """Write a new CA, a server certificate for ``hosts`` and a client certificate into ``directory``.

    Every call makes a new CA, so certificates from two calls do not trust each other.
    Keys are unencrypted EC P-256 keys. Requires the ``cryptography`` package.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(
        common_name: str, issuer: Optional[Tuple[Any, Any]], extensions: List[Tuple[Any, bool]]
    ) -> Tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + valid_for)
        )
        # Key identifiers: Python 3.13's default TLS context (VERIFY_X509_STRICT) refuses certificates without them.
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256()), key

    ca = issue("fyerreg throwaway test CA", None, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
    ])
    names: List[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server = issue(hosts[0] if hosts else "localhost", ca, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName(names), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    ])
    client = issue(client_name, ca, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    ])
    paths = {}
    for name, (cert, key) in (("ca", ca), ("server", server), ("client", client)):
        paths[name] = _write_pem(directory, name, cert, key)
    return Certificates(
        ca=paths["ca"][0],
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
    )


def _write_pem(directory: str, name: str, cert: Any, key: Any) -> Tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    cert_path = os.path.join(directory, f"{name}.pem")
    key_path = os.path.join(directory, f"{name}-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class TLSEtcdServer(EtcdServer):
    """An :class:`EtcdServer` that also serves clients over TLS at :attr:`tls_endpoint`.

    With ``client_cert_auth`` (the default) a TLS client must present a certificate signed
    by the CA of ``certificates``. The plaintext :attr:`endpoint` stays open, for health
    checks and for setting data up from outside; the member advertises only that one.
    """

    def __init__(self, certificates: Certificates, *, client_cert_auth: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.certificates = certificates
        self.client_cert_auth = client_cert_auth
        self.tls_port = fill_ports(self.host, [self.client_port, self.peer_port, None])[2]

    @property
    def tls_endpoint(self) -> str:
        """``https://host:port`` of the TLS listener."""
        return f"https://{self.host}:{self.tls_port}"

    def _args(self) -> List[str]:
        args = super()._args()
        listen = args.index("--listen-client-urls") + 1
        args[listen] = f"{args[listen]},{self.tls_endpoint}"
        args += ["--cert-file", self.certificates.server_cert, "--key-file", self.certificates.server_key]
        if self.client_cert_auth:
            args += ["--client-cert-auth", "--trusted-ca-file", self.certificates.ca]
        return args
