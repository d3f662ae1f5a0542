"""Instance validation and the wire format shared with the Go fyer-rpc registry."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fyerreg import Endpoint, Instance, InvalidInstanceError, Status
from fyerreg.naming import DEFAULT_WEIGHT, MAX_RECORD_BYTES, MAX_WEIGHT
from fyerreg.registry.layouts import FyerRpcLayout


def valid(**changes: Any) -> Instance:
    base = Instance(id="i-1", service="orders", version="v1", address="10.0.0.1:8080")
    return base.replace(**changes) if changes else base


def field_of(inst: Instance) -> Any:
    with pytest.raises(InvalidInstanceError) as err:
        inst.validate()
    return err.value.field


# -- validate() -----------------------------------------------------------------------------


def test_a_plain_instance_is_valid():
    valid().validate()
    valid(address="[::1]:1", weight=0, metadata={"k": ""}, status=Status.DISABLED).validate()
    valid(address="my-host.example.com:65535", weight=MAX_WEIGHT).validate()
    valid(id="ünïcode-日本_1.2", version="1.0.0-rc.1+build").validate()


@pytest.mark.parametrize("field", ["id", "service", "version"])
@pytest.mark.parametrize("value", [
    "", "a/b", "/", "a b", " a", "a\t", "a\n", "a\x00b", "a\x7f", "zero\u200bwidth", "bidi\u202e",
    "line\u2028sep", "nb\u00a0sp", ".", "..", "x" * 257, 5, None,
])
def test_key_segments_reject_path_and_invisible_characters(field: str, value: Any):
    assert field_of(valid(**{field: value})) == field


@pytest.mark.parametrize("address", [
    "", "host", "host:", ":80", "host:0", "host:65536", "host:-1", "host:80a", "host:٨٠",
    "::1:80", "[::1]", "[::1:80", "[not-ipv6]:80", "ho st:80", "host/x:80", "-host:80",
    "h\u00e9st:80", "a" * 254 + ":80", 8080, None,
])
def test_address_must_be_host_colon_port(address: Any):
    assert field_of(valid(address=address)) == "address"


@pytest.mark.parametrize("address", ["127.0.0.1:1", "[::1]:8080", "[2001:db8::1]:443", "localhost:80", "svc_1:9"])
def test_address_accepts_hosts_ipv4_and_bracketed_ipv6(address: str):
    valid(address=address).validate()


@pytest.mark.parametrize("weight", [True, False, -1, MAX_WEIGHT + 1, 1.0, "5", None])
def test_weight_is_an_int_in_range_and_not_a_bool(weight: Any):
    assert field_of(valid(weight=weight)) == "weight"


@pytest.mark.parametrize("metadata", [
    {"k": 1}, {1: "v"}, {"k": None}, {"k": ["v"]}, ["k", "v"], "k=v", {"k": "\ud800"},
    {"big": "x" * MAX_RECORD_BYTES},
])
def test_metadata_maps_str_to_str_and_fits_the_record_limit(metadata: Any):
    assert field_of(valid(metadata=metadata)) == "metadata"


def test_record_just_under_the_limit_is_accepted():
    overhead = len(valid(metadata={"big": ""}).to_json().encode())
    valid(metadata={"big": "x" * (MAX_RECORD_BYTES - overhead)}).validate()
    assert field_of(valid(metadata={"big": "x" * (MAX_RECORD_BYTES - overhead + 1)})) == "metadata"


def test_status_must_be_a_status():
    assert field_of(valid(status="up")) == "status"
    assert field_of(valid(status=300)) == "status"


def test_error_messages_name_the_field_and_value():
    with pytest.raises(InvalidInstanceError, match=r"id 'a/b' contains '/'"):
        valid(id="a/b").validate()
    with pytest.raises(InvalidInstanceError, match=r"port in 1\.\.65535"):
        valid(address="h:0").validate()


def test_instances_are_immutable_including_metadata():
    source = {"k": "v"}
    inst = valid(metadata=source)
    source["k"] = "changed"
    assert inst.metadata == {"k": "v"}
    with pytest.raises(TypeError):
        inst.metadata["k"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        inst.weight = 1  # type: ignore[misc]
    assert hash(inst) == hash(valid(metadata={"k": "v"}))


def test_new_generates_distinct_ids():
    a, b = Instance.new("orders", "v1", "h:1"), Instance.new("orders", "v1", "h:1")
    a.validate()
    assert a.id != b.id
    assert a.key == ("orders", "v1", a.id)


# -- wire format ------------------------------------------------------------------------------


def test_json_uses_the_go_field_names_plus_weight():
    inst = valid(status=Status.DISABLED, weight=7, metadata={"zone": "a"}, updated_at=1700000000123)
    assert json.loads(inst.to_json()) == {
        "id": "i-1", "service": "orders", "version": "v1", "address": "10.0.0.1:8080",
        "metadata": {"zone": "a"}, "status": 0, "updated_at": 1700000000123, "weight": 7,
    }
    assert Instance.from_json(inst.to_json()) == inst
    assert Instance.from_json(inst.to_json().encode()) == inst


def test_a_record_written_by_go_reads_with_defaults():
    go = b'{"id":"g1","service":"orders","version":"v1","address":"10.0.0.2:80","metadata":null,' \
         b'"status":1,"updated_at":0}'
    inst = Instance.from_json(go)
    assert inst.weight == DEFAULT_WEIGHT == 100
    assert inst.metadata == {}
    assert inst.status is Status.ENABLED and inst.enabled
    assert inst.updated_at == 0


def test_unknown_status_from_the_wire_is_kept_and_not_enabled():
    raw = valid().to_dict()
    raw["status"] = 7
    inst = Instance.from_dict(raw)
    assert int(inst.status) == 7 and inst.status.name == "UNKNOWN_7"
    assert not inst.enabled
    assert json.loads(inst.to_json())["status"] == 7


@pytest.mark.parametrize("raw", [
    "", "null", "[]", "42", '"str"', "{", "{}", b"\xff\xfe", "[" * 100_000,
    '{"id":"a","service":"s","version":"v"}',
    '{"id":1,"service":"s","version":"v","address":"h:1"}',
    '{"id":"a","service":"s","version":"v","address":"h:1","status":true}',
    '{"id":"a","service":"s","version":"v","address":"h:1","status":256}',
    '{"id":"a","service":"s","version":"v","address":"h:1","status":"1"}',
    '{"id":"a","service":"s","version":"v","address":"h:1","metadata":[]}',
    '{"id":"a","service":"s","version":"v","address":"h:1","metadata":{"k":"\\ud800"}}',
    '{"id":"a","service":"s","version":"v","address":"h:1","weight":1e400}',
    '{"id":"a","service":"s","version":"v","address":"h:1","updated_at":1.5}',
    '{"id":"a/b","service":"s","version":"v","address":"h:1"}',
    "9" * 10_000,
    "x" * (MAX_RECORD_BYTES + 1),
    None, 42,
])
def test_from_json_raises_only_invalid_instance_error(raw: Any):
    with pytest.raises(InvalidInstanceError):
        Instance.from_json(raw)


_segment_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"), blacklist_characters="/"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", ".."))
_hosts = st.sampled_from(["10.0.0.1", "localhost", "[::1]", "[2001:db8::7]", "svc_a.internal"])
_valid_instances = st.builds(
    Instance,
    id=_segment_text,
    service=_segment_text,
    version=_segment_text,
    address=st.builds(lambda h, p: f"{h}:{p}", _hosts, st.integers(1, 65535)),
    status=st.integers(0, 255).map(Status),
    weight=st.integers(0, MAX_WEIGHT),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=5),
    updated_at=st.integers(-(2**63), 2**63 - 1),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_fields = ["id", "service", "version", "address", "metadata", "status", "weight", "updated_at"]
_arbitrary_fields = st.fixed_dictionaries({}, optional={name: _json for name in _fields})
# A valid record with none, some or all of its fields replaced by arbitrary JSON: the valid
# side of from_json is exercised too, not only its refusals.
_json_records = _arbitrary_fields | st.builds(
    lambda inst, noise: {**json.loads(inst.to_json()), **noise}, _valid_instances, _arbitrary_fields)


def test_from_json_on_arbitrary_json_never_raises_anything_else():
    round_trips = 0

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_json_records)
    def check(record: Dict[str, Any]) -> None:
        nonlocal round_trips
        try:
            inst = Instance.from_json(json.dumps(record))
        except InvalidInstanceError:
            event("refused")
            return
        event("round trip")
        assert Instance.from_json(inst.to_json()) == inst
        round_trips += 1

    check()
    assert round_trips > 0, "no generated record was valid: the round-trip assert never ran"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_from_json_on_arbitrary_bytes_never_raises_anything_else(raw: bytes):
    try:
        Instance.from_json(raw)
    except InvalidInstanceError:
        pass


# -- hostile input: properties ----------------------------------------------------------------

# Characters that have broken key schemes elsewhere: separators and their look-alikes, dots,
# NUL and other controls, bidi overrides, zero-width and combining marks, surrogates.
_TRICKS = ["/", "\\", ".", "..", "\x00", "\x1f", "\x7f", "\u202e", "\u200b", "\u2060", "\ufeff", "\u2215",
           "\uff0f", "\u2044", "\u2024", "\uff0e", "\u0338", "\u0301", "\ud800", "\udfff", "%2f", "\n", " "]
_hostile_text = st.lists(st.sampled_from(_TRICKS) | st.text(max_size=3), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(_valid_instances)
def test_valid_instances_round_trip_exactly(inst: Instance):
    inst.validate()
    wire = inst.to_json()
    back = Instance.from_json(wire)
    assert back == inst
    assert back.to_json() == wire
    assert Instance.from_json(wire.encode("utf-8")) == inst
    assert Instance.from_dict(json.loads(wire)) == inst


@settings(max_examples=500, deadline=None)
@given(field=st.sampled_from(["id", "service", "version"]), value=_hostile_text)
def test_a_segment_that_validates_cannot_leave_its_key_prefix(field: str, value: str):
    inst = valid(**{field: value})
    try:
        inst.validate()
    except InvalidInstanceError as exc:
        assert exc.field == field
        return
    layout = FyerRpcLayout("fyerrpc")
    key = layout.instance_key(inst)
    raw = key.encode("utf-8")  # what etcd stores: bytes, compared byte-wise for prefixes
    assert raw.split(b"/") == [b"", b"fyerrpc", b"services", *(s.encode() for s in inst.key)]
    assert raw.startswith(layout.prefix(inst.service, inst.version).encode())
    assert raw.startswith(layout.prefix(inst.service, None).encode())
    assert layout.split(key) == inst.key


@settings(max_examples=50, deadline=None)
@given(extra=st.integers(1, 3 * MAX_RECORD_BYTES), keys=st.integers(1, 4))
def test_oversized_metadata_is_refused_by_validate(extra: int, keys: int):
    overhead = len(valid().to_json().encode())
    per_key = (MAX_RECORD_BYTES - overhead + extra) // keys + 1
    metadata = {f"k{i}": "é" * (per_key // 2 + 1) for i in range(keys)}
    with pytest.raises(InvalidInstanceError) as err:
        valid(metadata=metadata).validate()
    assert err.value.field == "metadata"


# -- named endpoints ---------------------------------------------------------------------------

# The Go fyer-rpc registry's record: these fields and JSON types, decoded with encoding/json,
# which ignores members it has no field for.
_GO_FIELDS = {"id": str, "service": str, "version": str, "address": str, "metadata": dict, "status": int,
              "updated_at": int}


def _as_go_reads_it(wire: str) -> Dict[str, Any]:
    record = json.loads(wire)
    seen = {name: record[name] for name in _GO_FIELDS if name in record}
    for name, value in seen.items():
        assert isinstance(value, _GO_FIELDS[name]), name
    assert 0 <= seen["status"] <= 255  # uint8
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in seen["metadata"].items())
    return seen


def test_endpoints_travel_in_the_record_and_go_still_reads_the_primary_address():
    inst = valid(metadata={"zone": "a"}).replace(
        endpoints={"grpc": "10.0.0.1:50051", "https": Endpoint("10.0.0.1:8443", tls=True)})
    inst.validate()
    wire = inst.to_json()
    assert json.loads(wire)["endpoints"] == {"grpc": {"address": "10.0.0.1:50051", "tls": False},
                                             "https": {"address": "10.0.0.1:8443", "tls": True}}
    assert Instance.from_json(wire) == inst
    assert _as_go_reads_it(wire) == _as_go_reads_it(valid(metadata={"zone": "a"}).to_json())
    assert _as_go_reads_it(wire)["address"] == "10.0.0.1:8080"


def test_a_record_without_endpoints_is_written_as_before_and_answers_every_protocol_at_its_address():
    older = b'{"id":"i-1","service":"orders","version":"v1","address":"10.0.0.1:8080","metadata":{},' \
            b'"status":1,"updated_at":0,"weight":100}'
    inst = Instance.from_json(older)
    assert inst.endpoints == {}
    assert inst.to_json().encode() == older
    assert inst.endpoint("grpc") == inst.endpoint("http") == Endpoint("10.0.0.1:8080")


def test_an_instance_naming_endpoints_does_not_speak_the_others():
    inst = valid(endpoints={"grpc": "10.0.0.1:50051"})
    assert inst.endpoint("grpc") == Endpoint("10.0.0.1:50051")
    assert inst.endpoint("http") is None


@pytest.mark.parametrize("endpoints, field", [
    ({"GRPC": "10.0.0.1:1"}, "endpoints"),
    ({"": "10.0.0.1:1"}, "endpoints"),
    ({"grpc": "10.0.0.1"}, "endpoints.grpc.address"),
    ({"grpc": "0.0.0.0:0"}, "endpoints.grpc.address"),
    ({"grpc": 50051}, "endpoints.grpc"),
    ({"grpc": Endpoint("10.0.0.1:1", tls="yes")}, "endpoints.grpc.tls"),  # type: ignore[arg-type]
    ({f"p{n}": "10.0.0.1:1" for n in range(17)}, "endpoints"),
])
def test_invalid_endpoints_are_refused_naming_the_field(endpoints: Any, field: str):
    assert field_of(valid(endpoints=endpoints)) == field


@pytest.mark.parametrize("raw", [
    {"endpoints": []}, {"endpoints": {"grpc": "10.0.0.1:1"}}, {"endpoints": {"grpc": {"tls": True}}},
    {"endpoints": {"grpc": {"address": "10.0.0.1:1", "tls": 1}}},
])
def test_malformed_endpoints_on_the_wire_make_the_record_invalid(raw: Dict[str, Any]):
    with pytest.raises(InvalidInstanceError):
        Instance.from_dict({**valid().to_dict(), **raw})
