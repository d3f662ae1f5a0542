"""EtcdOptions: defaults, validation naming the option, and construction failures."""

from __future__ import annotations

import socket
import time

import pytest

from fyerreg import RegistryUnavailableError
from fyerreg.cli import main
from fyerreg.registry.etcd import CacheOptions, EtcdOptions, EtcdRegistry, TLSOptions
from fyerreg.registry.etcd.options import MAX_TTL, Endpoint

from .support import make_instance


def test_defaults_match_the_documented_ones():
    opts = EtcdOptions()
    assert [ep.netloc for ep in opts.endpoints] == ["127.0.0.1:2379"]
    assert (opts.dial_timeout, opts.ttl, opts.namespace) == (5.0, 30, "fyerrpc")
    assert (opts.max_retry, opts.retry_interval) == (3, 1.0)
    assert opts.username is None and opts.password is None and opts.tls is None
    assert opts.auto_sync_interval == 0 and opts.dial_keepalive == 10.0
    assert opts.cache == CacheOptions(enabled=False, ttl=300.0)
    assert opts.prefix == "/fyerrpc/services/"


@pytest.mark.parametrize(
    ("text", "host", "port", "secure"),
    [
        ("127.0.0.1:2379", "127.0.0.1", 2379, None),
        ("http://etcd-0.local:2379", "etcd-0.local", 2379, False),
        ("https://etcd:12379/", "etcd", 12379, True),
        ("[::1]:2379", "[::1]", 2379, None),
        ("https://[fe80::1]:2379", "[fe80::1]", 2379, True),
    ],
)
def test_endpoints_are_parsed(text, host, port, secure):
    assert Endpoint.parse(text) == Endpoint(host, port, secure)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"endpoints": []}, "endpoints"),
        ({"endpoints": ["localhost"]}, "endpoints"),
        ({"endpoints": ["ftp://h:1"]}, "endpoints"),
        ({"endpoints": ["h:0"]}, "endpoints"),
        ({"endpoints": ["::1:2379"]}, "endpoints"),
        ({"endpoints": ["a:1", "a:1"]}, "endpoints"),
        ({"dial_timeout": 0}, "dial_timeout"),
        ({"dial_timeout": float("nan")}, "dial_timeout"),
        ({"ttl": 1}, "ttl"),
        ({"ttl": 9_000_000_001}, "ttl must be <= 9000000000"),
        ({"ttl": 2**63}, "ttl must be <= 9000000000"),
        ({"ttl": 99999999999999999999}, "ttl must be <= 9000000000"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "a/b"}, "namespace"),
        ({"max_retry": -1}, "max_retry"),
        ({"retry_interval": 0}, "retry_interval"),
        ({"username": "u"}, "username and password"),
        ({"password": "p"}, "username and password"),
        ({"auto_sync_interval": -1}, "auto_sync_interval"),
        ({"dial_keepalive": 1}, "dial_keepalive"),
        ({"cache": (True, 0)}, "cache.ttl"),
        ({"tls": {"ca": "/nonexistent/ca.pem"}}, "tls.ca"),
        ({"tls": {"bogus": "x"}}, "tls"),
    ],
)
def test_invalid_options_raise_valueerror_naming_the_option(options, named):
    with pytest.raises(ValueError, match=named):
        EtcdRegistry(**options)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"ttl": "30"}, "ttl"), ({"max_retry": 1.5}, "max_retry"), ({"endpoints": 2379}, "endpoints"),
     ({"cache": "yes"}, "cache"), ({"colour": "red"}, "colour")],
)
def test_wrongly_typed_options_raise_typeerror_naming_the_option(options, named):
    with pytest.raises(TypeError, match=named):
        EtcdRegistry(**options)


def test_option_forms_are_normalised(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    opts = EtcdOptions(endpoints="h:1", ttl=5.0, cache=(True, 60), tls={"ca": str(ca)})
    assert opts.endpoints == (Endpoint("h", 1, None),)
    assert opts.ttl == 5 and isinstance(opts.ttl, int)
    assert opts.cache == CacheOptions(True, 60)
    assert opts.tls == TLSOptions(ca=str(ca))
    assert opts.uses_tls
    assert "p4ss" not in repr(EtcdOptions(username="u", password="p4ss"))


def test_construction_against_a_closed_port_fails_within_dial_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match=f"127.0.0.1:{port}"):
            EtcdRegistry(endpoints=[f"127.0.0.1:{port}"], dial_timeout=1.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 1.0, f"took {elapsed:.2f}s"


@pytest.mark.etcd
def test_a_hung_endpoint_does_not_use_up_the_dial_timeout_of_the_others(etcd_endpoints):
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # completes TCP handshakes, never speaks HTTP/2: a frozen member
        endpoints = [f"127.0.0.1:{hung.getsockname()[1]}", *etcd_endpoints]
        registry = EtcdRegistry(endpoints=endpoints, dial_timeout=3, namespace="hung-endpoint-test")
        try:
            assert registry.list_services("svc") == []
        finally:
            registry.close()


# etcd's maximum lease TTL, read in etcd's source (etcd-io/etcd, server/lease/lessor.go at
# 023e3409e91b): "const MaxLeaseTTL = 9000000000", and Grant() returns ErrLeaseTTLTooLarge
# ("too large lease TTL") for a ttl above it.
ETCD_MAX_LEASE_TTL = 9_000_000_000


@pytest.mark.etcd
def test_the_ttl_bound_is_etcds_own_maximum_lease_ttl(etcd_client):
    assert MAX_TTL == ETCD_MAX_LEASE_TTL
    lease = etcd_client.lease(MAX_TTL)
    try:
        assert lease.remaining_ttl > MAX_TTL - 60
    finally:
        lease.revoke()
    with pytest.raises(Exception, match="too large lease TTL"):
        etcd_client.lease(MAX_TTL + 1)


@pytest.mark.etcd
def test_an_instance_registers_with_the_longest_ttl(registries):
    registry = registries.new(ttl=MAX_TTL)
    inst = make_instance("long")
    registry.register(inst)
    assert registry.registration_state(inst).registered


@pytest.mark.parametrize("ttl", ["99999999999999999999", "9000000001"])
def test_the_cli_answers_a_ttl_above_etcds_maximum_with_a_usage_error(ttl, capsys):
    argv = ["register", "--service", "s", "--version", "v", "--address", "127.0.0.1:1", "--ttl", ttl]
    assert main(argv, {}) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ttl" in err and "9000000000" in err
