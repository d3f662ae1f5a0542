"""Security: TLS with client certificates, a wrong CA, authentication, prefix-confined users, and
passwords (and tokens) never showing in logs, exception messages or reprs."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Iterator, List

import pytest

from fyerreg import (
    AuthenticationError,
    PermissionDeniedError,
    RegistryError,
    RegistryUnavailableError,
)
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import Certificates, EtcdServer, TLSEtcdServer, enable_auth, make_certificates
from tests.helpers import ids, next_snapshot
from tests.registry.etcd.support import SERVICE, make_instance

from .support import Background

pytestmark = pytest.mark.etcd

ROOT_PASSWORD = "r00t-Pa55-7f3a9c"
ALICE_PASSWORD = "al1ce-Pa55-e81b42"
TOKEN_TTL = 2


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """etcd with auth on: ``root`` may do anything, ``alice`` only under ``/A/``; tokens expire after 2 idle s."""
    with EtcdServer(extra_args=["--auth-token-ttl", str(TOKEN_TTL)]) as server:
        enable_auth(server.endpoints, root_password=ROOT_PASSWORD, users={"alice": (ALICE_PASSWORD, "/A/")})
        yield server


def _secured(registries, server: TLSEtcdServer, **options):
    return registries.new(endpoints=[server.tls_endpoint], **options)


# -- TLS ----------------------------------------------------------------------------------------


def test_mutual_tls_round_trip(tls_server: TLSEtcdServer, certs: Certificates, registries):
    writer = _secured(registries, tls_server, tls=certs.client_tls())
    reader = _secured(registries, tls_server, tls=certs.client_tls())
    sub = reader.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    writer.register(make_instance("tls-1"))
    assert ids(next_snapshot(sub)) == ["tls-1"]
    assert ids(reader.list_services(SERVICE)) == ["tls-1"]
    writer.deregister(make_instance("tls-1"))
    assert ids(next_snapshot(sub)) == []


@pytest.mark.parametrize("case", ["unknown CA", "no client certificate", "plaintext to the TLS port"])
def test_a_bad_tls_setup_fails_within_dial_timeout_naming_the_endpoint(
    case: str, tls_server: TLSEtcdServer, certs: Certificates, registries, tmp_path: Path
):
    endpoint = tls_server.tls_endpoint
    if case == "unknown CA":
        stranger = make_certificates(str(tmp_path / "stranger"))
        options = {"tls": {"ca": stranger.ca, "cert": certs.client_cert, "key": certs.client_key}}
    elif case == "no client certificate":
        options = {"tls": {"ca": certs.ca}}
    else:
        endpoint = endpoint.replace("https://", "http://")
        options = {}
    dial_timeout = 1.5
    attempt = Background(lambda: registries.new(endpoints=[endpoint], dial_timeout=dial_timeout, **options))
    with pytest.raises(RegistryUnavailableError) as err:
        attempt.result(within=dial_timeout + 3)
    assert endpoint.split("//")[1] in str(err.value)


def test_tls_endpoints_reject_a_client_without_tls_options_when_the_server_is_plaintext(
    etcd_endpoints: List[str], certs: Certificates, registries
):
    attempt = Background(lambda: registries.new(endpoints=[f"https://{etcd_endpoints[0]}"], dial_timeout=1.5,
                                                tls={"ca": certs.ca}))
    with pytest.raises(RegistryUnavailableError):
        attempt.result(within=4.5)


# -- authentication and permissions --------------------------------------------------------------


def test_wrong_password_is_an_authenticationerror(auth_server: EtcdServer, registries):
    with pytest.raises(AuthenticationError):
        registries.new(endpoints=auth_server.endpoints, username="alice", password="not-" + ALICE_PASSWORD,
                       namespace="A")
    with pytest.raises(AuthenticationError):
        registries.new(endpoints=auth_server.endpoints, username="nobody", password="x", namespace="A")


def test_a_user_confined_to_namespace_a_cannot_touch_namespace_b(auth_server: EtcdServer, registries):
    root_b = registries.new(endpoints=auth_server.endpoints, username="root", password=ROOT_PASSWORD, namespace="B")
    root_b.register(make_instance("in-b"))

    alice_a = registries.new(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD,
                             namespace="A")
    alice_a.register(make_instance("in-a"))
    assert ids(alice_a.list_services(SERVICE)) == ["in-a"]
    assert ids(alice_a.subscribe(SERVICE).get(timeout=5)) == ["in-a"]

    with pytest.raises(PermissionDeniedError) as err:
        registries.new(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD, namespace="B")
    assert isinstance(err.value, RegistryError)
    assert ids(root_b.list_services(SERVICE)) == ["in-b"]


# -- secrets stay secret -------------------------------------------------------------------------


def _rendered(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + repr(exc)


def test_passwords_and_tokens_never_reach_logs_exceptions_or_reprs(
    auth_server: EtcdServer, registries, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)  # every logger, the client library's included
    seen: List[str] = []

    for bad in (dict(password="wrong-" + ALICE_PASSWORD), dict(password=ALICE_PASSWORD, username="mallory")):
        options = {"username": "alice", **bad}
        with pytest.raises(AuthenticationError) as err:
            registries.new(endpoints=auth_server.endpoints, namespace="A", **options)
        seen.append(_rendered(err.value))
    with pytest.raises(ValueError) as bad_url:
        EtcdRegistry(endpoints=[f"http://alice:{ALICE_PASSWORD}@{auth_server.endpoint}"], namespace="A")
    seen.append(_rendered(bad_url.value))
    with pytest.raises(TypeError) as bad_type:
        EtcdRegistry(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD.encode())
    seen.append(_rendered(bad_type.value))

    owner = registries.new(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD,
                           namespace="A", ttl=30)
    watcher = registries.new(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD,
                             namespace="A")
    sub = watcher.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    owner.register(make_instance("s1"))
    next_snapshot(sub, lambda s: ids(s) == ["s1"])
    tokens = {owner._client._token, watcher._client._token}
    time.sleep(TOKEN_TTL + 1.5)  # idle until the tokens expire: the condition under test
    owner.update_service(make_instance("s1", weight=3))
    next_snapshot(sub, lambda s: ids(s) == ["s1"] and s[0].weight == 3)
    tokens |= {owner._client._token, watcher._client._token}
    with pytest.raises(PermissionDeniedError) as denied:
        registries.new(endpoints=auth_server.endpoints, username="alice", password=ALICE_PASSWORD, namespace="B")
    seen.append(_rendered(denied.value))
    seen += [repr(owner), repr(owner.options), str(owner.stats()), repr(owner.registration_state(make_instance("s1")))]
    registries.close()

    secrets = {ALICE_PASSWORD, ROOT_PASSWORD} | {t for t in tokens if t}
    assert len(secrets) > 2, "no auth token was seen: the test would prove nothing about tokens"
    logged = [f"{r.name} {r.getMessage()} {r.__dict__!r}" for r in caplog.records]
    assert any("renewed the etcd auth token" in line for line in logged)
    for secret in secrets:
        assert not [text for text in seen if secret in text], f"a secret appears in {seen}"
        assert not [line for line in logged if secret in line], "a secret was logged"
