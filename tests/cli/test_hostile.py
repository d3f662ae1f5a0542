"""The ``fyerreg`` command facing hostile data in etcd and servers that are not etcd.

Keys, values and error messages read from etcd are untrusted: none of them may forge a
log line, a table row or an error line. A server that answers but is not etcd is
"unreachable" (exit 3), never "not found" (exit 1).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
from concurrent import futures
from typing import Any, Callable, Dict, Iterator, List

import grpc
import pytest
from pyetcd.etcdrpc import rpc_pb2

from fyerreg.naming import Instance
from tests.helpers import Proc, wait_until

from .support import assert_one_line_error, cli_env, cli_process, run_cli

# A log line as the text format writes one: "2024-05-01 12:00:00,123 WARNING fyerreg.x: ..."
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) fyerreg")
_FORGED = "2024-05-01 12:00:00,000 ERROR fyerreg.registry.etcd: FORGED"
_HOSTILE_DETAILS = f"boom\n{_FORGED}\x1b[31m\u2028"


@contextlib.contextmanager
def grpc_server(*handlers: grpc.GenericRpcHandler) -> Iterator[str]:
    """A real gRPC server on a free loopback port serving only ``handlers``; yields its endpoint."""
    pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-grpc-server")
    server = grpc.server(pool)
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(10)
        pool.shutdown(wait=True)


def _unary(method: Callable[[Any, grpc.ServicerContext], Any], request: Any, response: Any) -> Any:
    return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request.FromString,
                                               response_serializer=response.SerializeToString)


def _range_answers(request: Any, context: grpc.ServicerContext) -> Any:
    return rpc_pb2.RangeResponse(header=rpc_pb2.ResponseHeader(revision=5))


def _fail_hostile(request: Any, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNAVAILABLE, f"boom\x1b[2J\r{_FORGED}\nsecond line")


def _hostile_etcd(range_method: Callable[[Any, grpc.ServicerContext], Any]) -> List[grpc.GenericRpcHandler]:
    """etcd's KV.Range answered by ``range_method``; its Watch fails with hostile details."""
    return [
        grpc.method_handlers_generic_handler(
            "etcdserverpb.KV", {"Range": _unary(range_method, rpc_pb2.RangeRequest, rpc_pb2.RangeResponse)}),
        grpc.method_handlers_generic_handler("etcdserverpb.Watch", {"Watch": grpc.stream_stream_rpc_method_handler(
            lambda requests, context: context.abort(grpc.StatusCode.UNAVAILABLE, _HOSTILE_DETAILS),
            request_deserializer=rpc_pb2.WatchRequest.FromString,
            response_serializer=rpc_pb2.WatchResponse.SerializeToString)}),
    ]


def _assert_records_are_single_escaped_lines(stderr_lines: List[str]) -> None:
    assert stderr_lines, "nothing was logged"
    assert all(_RECORD_START.match(line) for line in stderr_lines), stderr_lines
    text = "\n".join(stderr_lines)
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text


def test_hostile_keys_and_values_in_etcd_cannot_forge_log_lines_or_table_rows(
    etcd_client: Any, namespace: str, env: Dict[str, str]
) -> None:
    root = f"/{namespace}/services/evil/v1"
    # A key with a newline and a terminal escape, holding something that is not JSON at all.
    etcd_client.put(f"{root}/k\n{_FORGED}\x1b[2J", f"not json\n{_FORGED}")
    # A record naming another id than its key (the id is in the warning) with hostile metadata.
    etcd_client.put(f"{root}/m", json.dumps({"id": f"m\r\n{_FORGED}", "service": "evil", "version": "v1",
                                             "address": "10.0.0.1:1", "metadata": {"k": f"v\n{_FORGED}"}}))
    # A valid record whose metadata value is printed in the table.
    etcd_client.put(f"{root}/ok", Instance.new("evil", "v1", "10.0.0.2:2", id="ok",
                                               metadata={"note": f"a\n{_FORGED}\x1b[31m"}).to_json())

    result = run_cli("list", "evil", "--log-format", "text", env=env)
    assert result.returncode == 0, result.stderr
    records = result.stderr.splitlines()
    assert len(records) == 2, result.stderr  # one warning per skipped record, one line each
    _assert_records_are_single_escaped_lines(records)
    assert "\\n" + _FORGED in result.stderr and "\\x1b[2J" in result.stderr and "\\r\\n" in result.stderr

    _header, *rows = result.stdout.splitlines()
    assert len(rows) == 1 and rows[0].startswith("ok "), result.stdout
    assert "\\n" + _FORGED + "\\x1b[31m" in rows[0]


def test_hostile_error_details_from_the_server_stay_on_one_escaped_log_line(
    procs: List[Proc],
) -> None:
    with grpc_server(*_hostile_etcd(_range_answers)) as endpoint:
        watch = cli_process("watch", "svc", "--log-format", "text", env=cli_env([endpoint], "ns"))
        procs.append(watch)
        wait_until(lambda: any("FORGED" in line for line in watch.errors), timeout=30,
                   message="the broken watch was logged")
        assert watch.stop(signal.SIGINT) == 0
    _assert_records_are_single_escaped_lines(watch.errors)
    assert any("boom\\n" + _FORGED + "\\x1b[31m\\u2028" in line for line in watch.errors)


def test_hostile_error_details_in_a_failure_are_one_escaped_line() -> None:
    with grpc_server(*_hostile_etcd(_fail_hostile)) as endpoint:
        result = run_cli("list", "svc", env=cli_env([endpoint], "ns", FYERREG_DIAL_TIMEOUT="1"))
    assert result.returncode == 3
    line = assert_one_line_error(result)
    assert line.endswith("boom\\x1b[2J\\r" + _FORGED)  # escaped, and cut at the line break
    assert "\x1b" not in result.stderr and "\r" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["services"],
        ["services", "--json"],
        ["list", "orders"],
        ["watch", "orders"],
        ["register", "--service", "s", "--version", "v", "--address", "127.0.0.1:1"],
        ["deregister", "--service", "s", "--version", "v", "--id", "x"],
    ],
    ids=" ".join,
)
def test_a_grpc_server_that_is_not_etcd_is_unreachable_exit_3(argv: List[str]) -> None:
    with grpc_server() as endpoint:  # no services at all: every call is "Method not found"
        result = run_cli(*argv, env=cli_env([endpoint], "ns", FYERREG_DIAL_TIMEOUT="2"))
    assert result.returncode == 3, result.stderr
    line = assert_one_line_error(result)
    assert "unreachable" in line and "not as etcd" in line and endpoint in line
    assert result.stdout == ""
