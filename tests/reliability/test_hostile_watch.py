"""Hostile input on the watch path: garbage values and foreign keys written under a watched prefix
(by anyone with write access to etcd) never break a subscription nor hide or invent an instance."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fyerreg import Instance, InvalidInstanceError
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import raw_client
from tests.helpers import next_snapshot

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

NAMESPACE = f"hostile-{uuid.uuid4().hex[:8]}"
_services = (f"svc{n}" for n in itertools.count())

# Ids chosen to collide: U+FFFD is what a lenient decoder makes of the invalid byte \xff.
_ID_TEXT = ["a", "b", "\ufffd", "x\ufffd"]
_id_bytes = st.sampled_from([i.encode() for i in _ID_TEXT] + [b"\xff", b"x\xff", b"\xc3", b"a\x00"])
# What follows ``/{namespace}/services/{service}/``: mostly v1/<id>, sometimes not a record key at all.
_suffix = st.one_of(
    st.builds(lambda i: b"v1/" + i, _id_bytes),
    st.builds(lambda i: b"v2/" + i, _id_bytes),
    st.sampled_from([b"v1", b"v1/", b"v1/a/b", b"v1/../a", b"v1//a", b"\xff/a", b"v1/a/"]),
    st.binary(max_size=8),
)


def _record(service: str, version: str, id_: str, **changes: object) -> bytes:
    data = Instance(id=id_, service=service, version=version, address="10.0.0.1:80").to_dict()
    data.update(changes)
    return json.dumps(data).encode()


def _value(service: str) -> st.SearchStrategy[bytes]:
    ids = st.sampled_from(_ID_TEXT)
    versions = st.sampled_from(["v1", "v2"])
    return st.one_of(
        st.builds(lambda v, i: _record(service, v, i), versions, ids),  # valid (if the key matches)
        st.builds(lambda v, i: _record("other", v, i), versions, ids),  # another service's record
        st.builds(lambda v, i: _record(service, v, i, weight=-1), versions, ids),
        st.builds(lambda v, i: _record(service, v, i, metadata={"k": 1}), versions, ids),
        st.sampled_from([b"", b"null", b"{}", b"[]", b"\xff\xfe", b'{"id": "a"', b"9" * 5000, b"[" * 3000]),
        st.binary(max_size=64),
    )


def _writes(service: str) -> st.SearchStrategy[List[Tuple[bytes, Optional[bytes]]]]:
    """(key suffix, value) pairs; a None value deletes the key."""
    return st.lists(st.tuples(_suffix, st.none() | _value(service)), max_size=8)


def _expected(prefix: bytes, service: str, version: Optional[str],
              store: Dict[bytes, bytes]) -> Dict[Tuple[str, str], Instance]:
    """What a subscriber must hold, computed from the raw keys and values alone."""
    out: Dict[Tuple[str, str], Instance] = {}
    for key, value in store.items():
        rest = key[len(prefix):]
        try:
            parts = rest.decode("utf-8").split("/")
            if len(parts) != 2 or not all(parts) or (version is not None and parts[0] != version):
                continue
            inst = Instance.from_json(value)
        except (UnicodeDecodeError, InvalidInstanceError):
            continue
        if (inst.service, inst.version, inst.id) == (service, parts[0], parts[1]):
            out[(inst.id, inst.version)] = inst
    return out


@pytest.fixture(scope="module")
def watcher(etcd_endpoints: List[str]) -> Iterator[EtcdRegistry]:
    registry = EtcdRegistry(endpoints=etcd_endpoints, namespace=NAMESPACE, dial_timeout=3.0, retry_interval=0.2)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="module")
def writer(etcd_endpoints: List[str]) -> Iterator[object]:
    client = raw_client(etcd_endpoints)
    try:
        yield client
    finally:
        client.delete_prefix(f"/{NAMESPACE}/")
        client.close()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_garbage_and_foreign_keys_never_break_a_subscription(watcher: EtcdRegistry, writer, data) -> None:
    service = next(_services)
    prefix = f"/{NAMESPACE}/services/{service}/".encode()
    store: Dict[bytes, bytes] = {}

    def apply(writes: List[Tuple[bytes, Optional[bytes]]]) -> None:
        for suffix, value in writes:
            if value is None:
                writer.delete(prefix + suffix)
                store.pop(prefix + suffix, None)
            else:
                writer.put(prefix + suffix, value)
                store[prefix + suffix] = value

    apply(data.draw(_writes(service), label="before subscribing"))
    subs = {version: watcher.subscribe(service, version, timeout=5) for version in ("v1", None)}
    try:
        for version, sub in subs.items():
            first = sub.get(timeout=5)
            assert {(i.id, i.version): i for i in first} == _expected(prefix, service, version, store)
        apply(data.draw(_writes(service), label="while subscribed"))
        marker = Instance(id="zz-end", service=service, version="v1", address="10.0.0.9:80")
        writer.put(prefix + b"v1/zz-end", marker.to_json())
        store[prefix + b"v1/zz-end"] = marker.to_json().encode()

        for version, sub in subs.items():
            expected = _expected(prefix, service, version, store)
            snap = next_snapshot(sub, lambda s: any(i.id == "zz-end" for i in s), timeout=10)
            assert {(i.id, i.version): i for i in snap} == expected
            listed = watcher.list_services(service, version)
            assert {(i.id, i.version): i for i in listed} == expected
            assert not sub.closed
    finally:
        for sub in subs.values():
            sub.close()


def test_a_key_that_is_not_utf8_neither_impersonates_nor_hides_a_record(watcher: EtcdRegistry, writer) -> None:
    # Read leniently, b"\xff" and the UTF-8 of "\ufffd" are the same key: a foreign record at the
    # first could pose as instance "\ufffd", and garbage there could delete the real one.
    service = next(_services)
    prefix = f"/{NAMESPACE}/services/{service}/v1/".encode()
    sub = watcher.subscribe(service, "v1", timeout=5)
    try:
        assert sub.get(timeout=5) == []
        writer.put(prefix + b"\xff", _record(service, "v1", "\ufffd"))
        real = Instance(id="\ufffd", service=service, version="v1", address="10.0.0.1:80")
        writer.put(prefix + "\ufffd".encode(), real.to_json())
        assert [i.id for i in next_snapshot(sub, lambda s: len(s) > 0)] == ["\ufffd"]
        writer.put(prefix + b"\xff", b"garbage")
        marker = Instance(id="zz-end", service=service, version="v1", address="10.0.0.9:80")
        writer.put(prefix + b"zz-end", marker.to_json())
        snap = next_snapshot(sub, lambda s: any(i.id == "zz-end" for i in s))
        assert list(snap) == [marker, real]  # sorted by id
        assert watcher.list_services(service, "v1") == [marker, real]
    finally:
        sub.close()
