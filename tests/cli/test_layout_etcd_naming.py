"""``fyerreg --layout etcd-naming``: the endpoints a Go endpoints manager registered, listed by target.

The records are put as etcd's ``endpoints.Manager.AddEndpoint(ctx, target+"/"+addr,
Endpoint{Addr, Metadata}, clientv3.WithLease(lease))`` writes them (see
tests/registry/etcd/test_layout_etcd_naming.py for the source read).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterator

import pytest

from tests.registry.etcd.test_layout_etcd_naming import go_add

from .support import assert_one_line_error, run_cli

pytestmark = pytest.mark.etcd


@pytest.fixture
def target(etcd_client: Any) -> Iterator[str]:
    name = f"go-greeter-{uuid.uuid4().hex[:10]}"
    yield name
    etcd_client.delete_prefix(f"{name}/")


def test_list_shows_the_endpoints_a_go_manager_registered(etcd_client: Any, env: Dict[str, str],
                                                          target: str) -> None:
    go_add(etcd_client, f"{target}/127.0.0.1:50051", "127.0.0.1:50051", ttl=20)
    go_add(etcd_client, f"{target}/127.0.0.1:50052", "127.0.0.1:50052", {"version": "v2", "zone": "eu-1"}, ttl=20)

    result = run_cli("--layout", "etcd-naming", "list", target, env=env)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "VERSION", "ADDRESS", "STATUS", "WEIGHT", "METADATA", "TTL"]
    assert [row.split()[:6] for row in rows] == [
        ["127.0.0.1:50051", "-", "127.0.0.1:50051", "enabled", "100", "-"],
        ["127.0.0.1:50052", "v2", "127.0.0.1:50052", "enabled", "100", "zone=eu-1"],
    ]
    assert all(0 < int(row.split()[-1][:-1]) <= 20 for row in rows), "lease-bound: the TTL left is shown"

    as_json = run_cli("list", target, "--version", "v2", "--json", env=dict(env, FYERREG_LAYOUT="etcd-naming"))
    assert as_json.returncode == 0, as_json.stderr
    [only] = json.loads(as_json.stdout)
    assert (only["id"], only["address"], only["metadata"]) == ("127.0.0.1:50052", "127.0.0.1:50052", {"zone": "eu-1"})


def test_a_target_without_endpoints_exits_1(env: Dict[str, str], target: str) -> None:
    result = run_cli("--layout", "etcd-naming", "list", target, env=env)
    assert result.returncode == 1
    assert target in assert_one_line_error(result)

