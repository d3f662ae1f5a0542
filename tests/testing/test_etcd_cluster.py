"""EtcdCluster and the etcd_cluster fixture: three real members, broken and healed on demand."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import pyetcd
import pytest

from fyerreg.testing import EtcdCluster, EtcdServer, EtcdServerError, raw_client
from tests.helpers import etcd_pids, process_alive, wait_until

pytestmark = pytest.mark.slow


def _put(endpoints: List[str], key: str, value: str, timeout: float = 5) -> None:
    client = raw_client(endpoints, timeout=timeout)
    try:
        client.put(key, value)
    finally:
        client.close()


def _get(member: EtcdServer, key: str) -> Optional[bytes]:
    """``key`` read from ``member`` alone (serializable: its own copy, no leader involved)."""
    client = raw_client(member.endpoints, timeout=5)
    try:
        value: Optional[bytes] = client.get(key, serializable=True)[0]
        return value
    finally:
        client.close()


def _member_names(cluster: EtcdCluster) -> List[str]:
    client = raw_client(cluster.endpoints, timeout=5)
    try:
        return sorted(m.name for m in client.members)
    finally:
        client.close()


def test_three_members_replicate_and_agree_on_one_leader(etcd_cluster: EtcdCluster) -> None:
    assert len(etcd_cluster.members) == 3
    assert etcd_cluster.endpoints == [m.endpoint for m in etcd_cluster.members]
    assert len(set(etcd_cluster.endpoints)) == 3
    assert all(m.healthy() for m in etcd_cluster.members)
    assert _member_names(etcd_cluster) == sorted(m.name for m in etcd_cluster.members)

    leader = etcd_cluster.leader()
    followers = etcd_cluster.followers()
    assert leader in etcd_cluster.members
    assert len(followers) == 2 and leader not in followers

    _put([followers[0].endpoint], "/cluster-test/replicated", "v")
    assert _get(followers[1], "/cluster-test/replicated") == b"v"
    assert etcd_cluster.member(0) is etcd_cluster.members[0]
    assert etcd_cluster.member(etcd_cluster.members[1]) is etcd_cluster.members[1]


def test_killing_the_leader_elects_another_and_restart_brings_it_back(etcd_cluster: EtcdCluster) -> None:
    old = etcd_cluster.leader()
    pid = old.pid
    assert pid is not None
    assert etcd_cluster.kill(old) is old
    assert not process_alive(pid) and not old.is_running
    new = etcd_cluster.leader(timeout=20)
    assert new is not old
    _put([new.endpoint], "/cluster-test/after-kill", "v")

    etcd_cluster.restart(old)
    assert old.healthy()
    assert old.pid != pid
    wait_until(lambda: _get(old, "/cluster-test/after-kill") == b"v", timeout=10)


def test_a_stopped_member_answers_nothing_until_cont(etcd_cluster: EtcdCluster) -> None:
    frozen = etcd_cluster.followers()[0]
    etcd_cluster.stop(frozen)
    assert frozen.is_paused and frozen.is_running
    assert frozen not in etcd_cluster.running
    assert not frozen.healthy(timeout=0.3)
    with pytest.raises(pyetcd.Etcd3Exception):
        client = raw_client(frozen.endpoints, timeout=0.5)
        try:
            client.get("/cluster-test/x")
        finally:
            client.close()
    others = [m.endpoint for m in etcd_cluster.running]
    _put(others, "/cluster-test/while-frozen", "v")  # two of three members: still a quorum

    etcd_cluster.cont(frozen)
    assert not frozen.is_paused
    frozen.wait_healthy(timeout=20)
    wait_until(lambda: _get(frozen, "/cluster-test/while-frozen") == b"v", timeout=10)


def test_two_members_down_lose_quorum_and_restarting_them_restores_it(etcd_cluster: EtcdCluster) -> None:
    survivor = etcd_cluster.leader()  # a cut-off leader goes on calling itself leader for a while
    victims = etcd_cluster.followers()
    for member in victims:
        etcd_cluster.kill(member)
    assert not survivor.healthy(timeout=0.5)
    with pytest.raises(pyetcd.Etcd3Exception):
        _put([survivor.endpoint], "/cluster-test/no-quorum", "v", timeout=0.5)
    with pytest.raises(EtcdServerError, match="no leader"):
        etcd_cluster.leader(timeout=0.5)

    for member in victims:
        etcd_cluster.restart(member, wait=False)
    etcd_cluster.wait_healthy(timeout=30)
    _put([survivor.endpoint], "/cluster-test/quorum-back", "v")
    assert etcd_cluster.leader() in etcd_cluster.members


def test_add_member_grows_the_cluster_and_heal_removes_it(etcd_cluster: EtcdCluster) -> None:
    _put(etcd_cluster.endpoints, "/cluster-test/before-add", "v")
    original = list(etcd_cluster.members)
    added = etcd_cluster.add_member()
    assert etcd_cluster.members == [*original, added]
    assert added.healthy()
    assert len(_member_names(etcd_cluster)) == 4
    wait_until(lambda: _get(added, "/cluster-test/before-add") == b"v", timeout=10)
    pid, data_dir = added.pid, added.data_dir
    assert pid is not None

    etcd_cluster.stop(original[0])
    etcd_cluster.kill(original[1])
    etcd_cluster.heal()
    assert etcd_cluster.members == original
    assert all(m.healthy() for m in original)
    assert len(_member_names(etcd_cluster)) == 3
    assert not process_alive(pid)
    assert not os.path.exists(data_dir)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        EtcdCluster(0)
    with pytest.raises(TypeError, match="extra_args"):
        EtcdCluster(extra_args="--foo")
    cluster, stranger = EtcdCluster(2), EtcdServer()
    try:
        with pytest.raises(ValueError, match="not a member"):
            cluster.member(stranger)
    finally:
        stranger.close()
        cluster.close()


def test_the_fixture_heals_between_tests_and_cleans_up_after_the_session(pytester: pytest.Pytester) -> None:
    out = pytester.path / "cluster.json"
    pytester.makepyfile(test_user=f"""
        import json

        def test_break_it(etcd_cluster):
            etcd_cluster.add_member()
            etcd_cluster.kill(etcd_cluster.leader())
            etcd_cluster.stop(etcd_cluster.running[0])

        def test_healed(etcd_cluster):
            assert len(etcd_cluster.members) == 3
            assert all(m.healthy() for m in etcd_cluster.members)
            with open({str(out)!r}, "w") as f:
                json.dump({{"urls": [m.client_url for m in etcd_cluster.members],
                           "dirs": [m.data_dir for m in etcd_cluster.members]}}, f)
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
    seen = json.loads(Path(out).read_text())
    for url in seen["urls"]:
        assert etcd_pids(url) == []
    assert not any(os.path.exists(d) for d in seen["dirs"])
