"""Configuration from the environment: ``fyerreg.connect`` against a real etcd, one test per variable.

Each variable is checked by what it does: the keys written, the lease etcd holds, the
etcd connected to, the credentials and certificates accepted, the address advertised.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import fyerreg
from fyerreg import AuthenticationError, ConfigurationError, Instance, RegistryUnavailableError
from fyerreg.api import Server, ServerOptions
from fyerreg.registry.etcd.registry import lease_seconds
from fyerreg.serving import InstanceSpec
from fyerreg.testing import Certificates, EtcdServer, TLSEtcdServer, enable_auth, raw_client
from tests.helpers import fyerreg_threads, wait_until

pytestmark = pytest.mark.etcd

INSTANCE = Instance.new("orders", "v1", "10.0.0.1:8080", id="a")
KEY = "/services/orders/v1/a"


def keys(etcd_client: Any, prefix: str) -> List[str]:
    return sorted(meta.key.decode() for _, meta in etcd_client.get_prefix(prefix))


def granted_ttl(etcd_client: Any, key: str) -> int:
    _, meta = etcd_client.get(key)
    assert meta is not None, f"no {key} in etcd"
    return int(etcd_client.get_lease_info(meta.lease_id).grantedTTL)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """etcd with authentication on: ``root``/``root pw`` may do anything."""
    with EtcdServer() as server:
        enable_auth(server.endpoints, root_password="root pw")
        yield server


# -- one variable at a time -----------------------------------------------------------------------


def test_fyerreg_endpoints_is_the_etcd_connect_connects_to(
    monkeypatch: pytest.MonkeyPatch, etcd_server: EtcdServer, etcd_endpoints: List[str], namespace: str
) -> None:
    monkeypatch.setenv("FYERREG_ENDPOINTS", f"127.0.0.1:1,{etcd_server.endpoints[0]}")  # the first never answers
    monkeypatch.setenv("FYERREG_NAMESPACE", namespace)
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        assert [ep.netloc for ep in registry.options.endpoints] == ["127.0.0.1:1", etcd_server.endpoints[0]]
        private = raw_client(etcd_server.endpoints)
        shared = raw_client(etcd_endpoints)
        try:
            assert keys(private, f"/{namespace}/") == [f"/{namespace}{KEY}"]
            assert keys(shared, f"/{namespace}/") == []  # not the default, not the session's etcd
        finally:
            private.close()
            shared.close()


def test_fyerreg_namespace_is_where_records_are_written(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                        namespace: str) -> None:
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        assert keys(etcd_client, f"/{namespace}/") == [f"/{namespace}{KEY}"]
        assert keys(etcd_client, "/fyerrpc/services/orders/") == []


def test_fyerreg_ttl_is_the_lease_etcd_grants_each_instance(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                            namespace: str) -> None:
    environment.setenv("FYERREG_TTL", "7")
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        assert granted_ttl(etcd_client, f"/{namespace}{KEY}") == lease_seconds(7) == 6


def test_fyerreg_layout_is_how_records_sit_in_etcd(monkeypatch: pytest.MonkeyPatch, etcd_server: EtcdServer) -> None:
    monkeypatch.setenv("FYERREG_ENDPOINTS", etcd_server.endpoints[0])
    monkeypatch.setenv("FYERREG_LAYOUT", "etcd-naming")
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        client = raw_client(etcd_server.endpoints)
        try:
            values = [json.loads(value) for value, _ in client.get_all()]
        finally:
            client.close()
    assert [v["Addr"] for v in values] == ["10.0.0.1:8080"]  # etcd's own naming record, not fyer-rpc's


def test_fyerreg_dial_timeout_bounds_connecting_to_a_hung_etcd(monkeypatch: pytest.MonkeyPatch,
                                                               etcd_server: EtcdServer) -> None:
    monkeypatch.setenv("FYERREG_ENDPOINTS", etcd_server.endpoints[0])
    monkeypatch.setenv("FYERREG_DIAL_TIMEOUT", "1")
    etcd_server.pause()
    try:
        began = time.monotonic()
        with pytest.raises(RegistryUnavailableError):
            fyerreg.connect()
        took = time.monotonic() - began
    finally:
        etcd_server.resume()
    assert took < 1 + 2.5, f"connect took {took:.1f}s with FYERREG_DIAL_TIMEOUT=1 (the default is 5)"


@pytest.mark.parametrize("user_variable", ["FYERREG_USERNAME", "FYERREG_USER"])
def test_fyerreg_username_and_password_authenticate(monkeypatch: pytest.MonkeyPatch, auth_server: EtcdServer,
                                                    namespace: str, user_variable: str) -> None:
    monkeypatch.setenv("FYERREG_ENDPOINTS", auth_server.endpoints[0])
    monkeypatch.setenv("FYERREG_NAMESPACE", namespace)
    monkeypatch.setenv(user_variable, "root")
    monkeypatch.setenv("FYERREG_PASSWORD", "root pw")
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        assert [i.address for i in registry.list_services("orders")] == [INSTANCE.address]
        assert "root pw" not in repr(registry) + repr(registry.options)
    monkeypatch.setenv("FYERREG_PASSWORD", "wrong pw")
    with pytest.raises(AuthenticationError) as refused:
        fyerreg.connect()
    assert "wrong pw" not in str(refused.value)


def test_fyerreg_password_file_holds_the_password(monkeypatch: pytest.MonkeyPatch, auth_server: EtcdServer,
                                                  namespace: str, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("root pw\n")  # as `echo root pw > file` writes it
    monkeypatch.setenv("FYERREG_ENDPOINTS", auth_server.endpoints[0])
    monkeypatch.setenv("FYERREG_NAMESPACE", namespace)
    monkeypatch.setenv("FYERREG_USERNAME", "root")
    monkeypatch.setenv("FYERREG_PASSWORD_FILE", str(secret))
    with fyerreg.connect() as registry:
        registry.register(INSTANCE)
        assert [i.address for i in registry.list_services("orders")] == [INSTANCE.address]

    missing = tmp_path / "no-such-file"
    monkeypatch.setenv("FYERREG_PASSWORD_FILE", str(missing))
    with pytest.raises(ConfigurationError, match=f"FYERREG_PASSWORD_FILE='{missing}': cannot read") as unread:
        fyerreg.connect()
    assert unread.value.variable == "FYERREG_PASSWORD_FILE"

    monkeypatch.setenv("FYERREG_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("FYERREG_PASSWORD", "root pw")
    with pytest.raises(ConfigurationError, match="both set") as both:
        fyerreg.connect()
    assert "root pw" not in str(both.value)


@pytest.mark.parametrize("names", [("FYERREG_TLS_CA", "FYERREG_TLS_CERT", "FYERREG_TLS_KEY"),
                                   ("FYERREG_CACERT", "FYERREG_CERT", "FYERREG_KEY")],
                         ids=["names", "deprecated-names"])
def test_fyerreg_tls_ca_cert_and_key_make_a_mutual_tls_connection(
    monkeypatch: pytest.MonkeyPatch, tls_server: TLSEtcdServer, certs: Certificates, namespace: str,
    names: List[str],
) -> None:
    ca, cert, key = names
    monkeypatch.setenv("FYERREG_ENDPOINTS", tls_server.tls_endpoint)
    monkeypatch.setenv("FYERREG_NAMESPACE", namespace)
    monkeypatch.setenv(ca, certs.ca)
    monkeypatch.setenv(cert, certs.client_cert)
    monkeypatch.setenv(key, certs.client_key)
    with fyerreg.connect(dial_timeout=3) as registry:
        registry.register(INSTANCE)
        assert [i.address for i in registry.list_services("orders")] == [INSTANCE.address]
    monkeypatch.delenv(key)
    with pytest.raises(ConfigurationError, match="FYERREG_TLS_CERT and FYERREG_TLS_KEY go together"):
        fyerreg.connect()


def test_fyerreg_tls_ca_alone_is_refused_by_an_etcd_wanting_a_client_certificate(
    monkeypatch: pytest.MonkeyPatch, tls_server: TLSEtcdServer, certs: Certificates
) -> None:
    monkeypatch.setenv("FYERREG_ENDPOINTS", tls_server.tls_endpoint)
    monkeypatch.setenv("FYERREG_TLS_CA", certs.ca)
    with pytest.raises((AuthenticationError, RegistryUnavailableError)) as refused:
        fyerreg.connect(dial_timeout=2)
    assert f":{tls_server.tls_port}" in str(refused.value)  # that etcd refused it, over TLS


def test_fyerreg_advertise_address_is_what_a_server_registers(environment: pytest.MonkeyPatch,
                                                              etcd_client: Any, namespace: str) -> None:
    environment.setenv("FYERREG_ADVERTISE_ADDRESS", "orders.internal")
    server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, service_name="orders",
                                  service_version="v1", instance_id="a", drain_delay=0))
    server.start()  # no registry given: the server connects one from the environment, and closes it
    try:
        assert server.instance is not None
        port = server.instance.address.rsplit(":", 1)[1]
        value, _ = etcd_client.get(f"/{namespace}{KEY}")
        assert json.loads(value)["address"] == f"orders.internal:{port}"
    finally:
        server.stop(grace=1)
    assert keys(etcd_client, f"/{namespace}/") == []
    wait_until(lambda: fyerreg_threads() == [], timeout=10, message="the server's own registry to be closed")


@pytest.mark.parametrize(("variables", "advertised"), [
    ({"POD_IP": "10.1.2.3"}, "10.1.2.3:8000"),
    ({"HOST_IP": "10.9.9.9"}, "10.9.9.9:8000"),
    ({"POD_IP": "10.1.2.3", "HOST_IP": "10.9.9.9"}, "10.1.2.3:8000"),
    ({"POD_IP": "fd00::7"}, "[fd00::7]:8000"),
    ({"POD_IP": "10.1.2.3", "FYERREG_ADVERTISE_ADDRESS": "orders.internal:80"}, "orders.internal:80"),
], ids=["POD_IP", "HOST_IP", "POD_IP-before-HOST_IP", "POD_IP-v6", "FYERREG_ADVERTISE_ADDRESS-before-POD_IP"])
def test_pod_ip_and_host_ip_are_advertised_for_a_server_on_every_interface(
    monkeypatch: pytest.MonkeyPatch, variables: Any, advertised: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert InstanceSpec("orders", address="0.0.0.0:8000").instance().address == advertised
    assert InstanceSpec("orders", address=":0").instance(8000).address == advertised


def test_an_explicit_advertise_address_or_bind_host_wins_over_pod_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    assert InstanceSpec("orders", address="127.0.0.1:8000").instance().address == "127.0.0.1:8000"
    monkeypatch.setenv("FYERREG_ADVERTISE_ADDRESS", "from-env")
    explicit = InstanceSpec("orders", address="0.0.0.0:8000", advertise_address="given:9000")
    assert explicit.instance().address == "given:9000"
    assert InstanceSpec("orders", address="127.0.0.1:8000").instance().address == "from-env:8000"


# -- precedence and errors --------------------------------------------------------------------------


def test_arguments_win_over_the_environment_and_their_variables_are_not_read(
    environment: pytest.MonkeyPatch, etcd_client: Any
) -> None:
    own = f"explicit-{uuid.uuid4().hex[:8]}"
    environment.setenv("FYERREG_TTL", "abc")  # malformed, but ttl is given: never read
    environment.setenv("FYERREG_TLS_CA", "/nonexistent/ca.pem")  # likewise for tls
    with fyerreg.connect(namespace=own, ttl=5, tls=None) as registry:
        registry.register(INSTANCE)
        assert keys(etcd_client, f"/{own}/") == [f"/{own}{KEY}"]
        assert granted_ttl(etcd_client, f"/{own}{KEY}") == lease_seconds(5)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("FYERREG_TTL", "abc", "FYERREG_TTL='abc': expected a whole number of seconds from 2 to"),
    ("FYERREG_TTL", "1", "FYERREG_TTL='1': expected a whole number"),
    ("FYERREG_DIAL_TIMEOUT", "-1", "FYERREG_DIAL_TIMEOUT='-1': expected a number of seconds > 0"),
    ("FYERREG_ENDPOINTS", "ftp://h:1", "FYERREG_ENDPOINTS: endpoints: 'ftp://h:1' has scheme 'ftp'"),
    ("FYERREG_ENDPOINTS", "user:secret@h:1", "FYERREG_ENDPOINTS: endpoints: an endpoint carries credentials"),
    ("FYERREG_NAMESPACE", "a/b", "FYERREG_NAMESPACE='a/b'"),
    ("FYERREG_LAYOUT", "consul", "FYERREG_LAYOUT='consul': expected one of"),
    ("FYERREG_TLS_CA", "/nonexistent/ca.pem", "FYERREG_TLS_CA='/nonexistent/ca.pem': expected a readable file"),
    ("FYERREG_KEY", "/nonexistent/k.pem", "FYERREG_KEY='/nonexistent/k.pem'"),
    ("FYERREG_ADVERTISE_ADDRESS", "0.0.0.0:80", "FYERREG_ADVERTISE_ADDRESS='0.0.0.0:80'"),
    ("FYERREG_ADVERTISE_ADDRESS", "h:99999", "FYERREG_ADVERTISE_ADDRESS 'h:99999' has no port"),
    ("POD_IP", "not-an-ip", "POD_IP='not-an-ip': expected an IP address"),
    ("HOST_IP", "0.0.0.0", "HOST_IP='0.0.0.0'"),
])
def test_a_malformed_variable_is_an_error_naming_it_before_anything_is_written(
    environment: pytest.MonkeyPatch, etcd_client: Any, namespace: str, variable: str, value: str, expected: str
) -> None:
    environment.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        spec = InstanceSpec("orders", "v1", "0.0.0.0:8080", instance_id="a")  # reads the advertise address
        with fyerreg.connect() as registry:
            registry.register(spec.instance())
    assert str(raised.value).startswith(expected)
    assert raised.value.variable == variable
    assert isinstance(raised.value, ValueError)
    assert "secret" not in str(raised.value)
    assert keys(etcd_client, f"/{namespace}/") == []


def test_a_user_name_without_a_password_or_a_password_without_a_user_name_is_an_error_naming_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FYERREG_USERNAME", "root")
    with pytest.raises(ConfigurationError, match=r"^FYERREG_USERNAME is set but neither FYERREG_PASSWORD nor"):
        fyerreg.connect()
    assert fyerreg.config.registry_options(password="given")["username"] == "root"  # the other one given: fine
    monkeypatch.delenv("FYERREG_USERNAME")
    secret = tmp_path / "password"
    secret.write_text("root pw")
    monkeypatch.setenv("FYERREG_PASSWORD_FILE", str(secret))
    with pytest.raises(ConfigurationError, match=r"^FYERREG_PASSWORD_FILE is set but not FYERREG_USERNAME") as raised:
        fyerreg.connect()
    assert "root pw" not in str(raised.value)


def test_an_etcd_options_object_given_leaves_nothing_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, etcd_endpoints: List[str], etcd_client: Any, namespace: str
) -> None:
    monkeypatch.setenv("FYERREG_TTL", "abc")
    monkeypatch.setenv("FYERREG_NAMESPACE", "not-this-one")
    with fyerreg.connect(options=fyerreg.EtcdOptions(endpoints=etcd_endpoints, namespace=namespace)) as registry:
        registry.register(INSTANCE)
        assert keys(etcd_client, f"/{namespace}/") == [f"/{namespace}{KEY}"]


@pytest.fixture
def hostile_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"FYERREG_ENDPOINTS": "127.0.0.1:1", "FYERREG_TTL": "abc", "FYERREG_USERNAME": "nobody",
                        "FYERREG_TLS_CA": "/nonexistent/ca.pem", "POD_IP": "bogus"}.items():
        monkeypatch.setenv(name, value)


def test_the_pytest_plugins_fixtures_never_read_the_configuration_variables(
    hostile_environment: None, etcd_server: EtcdServer, etcd_client: Any
) -> None:
    etcd_client.put("/k", "v")  # the session's etcd, reached with these variables set
    assert etcd_client.get("/k")[0] == b"v"
    private = raw_client(etcd_server.endpoints)  # and a private etcd started with them set
    try:
        private.put("/k", "w")
        assert private.get("/k")[0] == b"w"
    finally:
        private.close()
