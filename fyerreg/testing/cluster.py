"""A multi-member etcd cluster on loopback ports, for fault tests (kill, freeze, restart, grow)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Sequence, Union

from .errors import EtcdServerError
from .server import _NO_PROXY_OPENER, EtcdServer

__all__ = ["EtcdCluster"]

log = logging.getLogger("fyerreg.testing.cluster")

Member = Union[int, EtcdServer]
_POLL_INTERVAL = 0.05
# etcd's default strict check refuses a member change until every peer has been connected for
# 5 s, which only slows tests down; a test adds members to a healthy cluster anyway.
_CLUSTER_ARGS = ["--strict-reconfig-check=false"]


class EtcdCluster:
    """``size`` etcd members (3 by default) forming one cluster on loopback ports.

    Members are :class:`EtcdServer` objects in :attr:`members`; every method taking a
    ``member`` accepts one of them or its index. Faults are named after the signals
    they send: :meth:`kill` (SIGKILL, a crash), :meth:`stop` (SIGSTOP, a hung member
    whose connections stay open) and :meth:`cont` (SIGCONT). :meth:`restart` brings a
    member back on the same ports and data, :meth:`add_member` grows the cluster and
    :meth:`heal` undoes every fault (and every added member) so the next test starts
    from a healthy cluster of the original members. :meth:`close` removes everything.
    Drive a cluster from one thread at a time.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        name: str = "fyerreg",
        binary: Optional[str] = None,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of arguments, not a str")
        self.name = name
        self._binary = binary
        self._extra_args = [*_CLUSTER_ARGS, *extra_args]
        self._host = host
        self._token = f"{name}-{uuid.uuid4().hex[:8]}"
        self._added = 0
        self.members: List[EtcdServer] = [self._new_member(f"{name}-{i}") for i in range(size)]
        self._original = list(self.members)
        cluster = self._initial_cluster(self.members)
        for member in self.members:
            member.initial_cluster = cluster

    # -- addresses ------------------------------------------------------------------------

    @property
    def endpoints(self) -> List[str]:
        """``host:port`` of every member (running or not), in member order."""
        return [m.endpoint for m in self.members]

    def member(self, which: Member) -> EtcdServer:
        """The member ``which`` (an index into :attr:`members`, or the member itself)."""
        if isinstance(which, EtcdServer):
            if which not in self.members:
                raise ValueError(f"{which!r} is not a member of this cluster")
            return which
        return self.members[which]

    @property
    def running(self) -> List[EtcdServer]:
        """Members whose process runs and is not frozen."""
        return [m for m in self.members if m.is_running and not m.is_paused]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start every member and wait until each one is healthy (the cluster has a leader)."""
        try:
            for member in self.members:
                member.start(wait=False)
            self.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until every running member answers as healthy (quorum and a leader)."""
        deadline = time.monotonic() + timeout
        for member in self.members:
            if member.is_running:
                member.wait_healthy(max(0.1, deadline - time.monotonic()))

    def kill(self, which: Member) -> EtcdServer:
        """Crash ``which`` (SIGKILL); its data dir stays, so :meth:`restart` brings it back."""
        member = self.member(which)
        member.kill()
        log.debug("etcd member killed", extra={"endpoint": member.endpoint})
        return member

    def stop(self, which: Member) -> EtcdServer:
        """Freeze ``which`` (SIGSTOP): it keeps its sockets open but answers nothing."""
        member = self.member(which)
        member.pause()
        return member

    def cont(self, which: Member) -> EtcdServer:
        """Unfreeze ``which`` after :meth:`stop` (SIGCONT)."""
        member = self.member(which)
        member.resume()
        return member

    def restart(self, which: Member, *, wait: bool = True, timeout: float = 30.0) -> EtcdServer:
        """Start ``which`` again on its ports and data (a running member is killed first).

        With ``wait``, block until it is healthy, which needs a quorum of members running:
        when bringing back several members of a cluster without quorum, pass ``wait=False``
        and call :meth:`wait_healthy` after the last one.
        """
        member = self.member(which)
        if member.is_paused:
            member.resume()
        member.kill()
        member.start(wait=False)
        if wait:
            member.wait_healthy(timeout)
        return member

    def leader(self, timeout: float = 10.0) -> EtcdServer:
        """The member that leads the cluster now: the one a majority of the members report as leader.

        (A leader cut off from the others goes on calling itself leader for a while.)
        Waits up to ``timeout`` for an election to finish; :class:`EtcdServerError` after that.
        """
        deadline = time.monotonic() + timeout
        while True:
            ids = self._member_ids()
            votes: Dict[int, int] = {}
            for member in self.running:
                status = self._call(member, "/v3/maintenance/status", {}, timeout=1.0)
                leader_id = int(status.get("leader", 0)) if status else 0
                if leader_id:
                    votes[leader_id] = votes.get(leader_id, 0) + 1
            for candidate, member_id in ids.items():
                if votes.get(member_id, 0) > len(self.members) // 2 and candidate in self.running:
                    return candidate
            if time.monotonic() >= deadline:
                raise EtcdServerError(f"no leader among the running members after {timeout:g}s")
            time.sleep(_POLL_INTERVAL)

    def followers(self, timeout: float = 10.0) -> List[EtcdServer]:
        """The running members that do not lead."""
        leader = self.leader(timeout)
        return [m for m in self.running if m is not leader]

    def add_member(self, timeout: float = 60.0) -> EtcdServer:
        """Add a new member to the running cluster, start it and wait until it is healthy."""
        self._added += 1
        member = self._new_member(f"{self.name}-added-{self._added}")
        member.initial_cluster = self._initial_cluster([*self.members, member])
        member.initial_cluster_state = "existing"
        try:
            self._require_call("/v3/cluster/member/add", {"peerURLs": [member.peer_url]}, timeout)
            self.members.append(member)
            member.start(wait=False)
            member.wait_healthy(timeout)
        except BaseException:
            if member in self.members:
                with contextlib.suppress(EtcdServerError):
                    self.remove_member(member, timeout=10.0)
            member.close()
            raise
        log.debug("etcd member added", extra={"endpoint": member.endpoint})
        return member

    def remove_member(self, which: Member, timeout: float = 30.0) -> None:
        """Remove ``which`` from the cluster (through another member) and close it."""
        member = self.member(which)
        member_id = self._member_ids(exclude=member).get(member)
        if member_id is not None:
            self._require_call("/v3/cluster/member/remove", {"ID": str(member_id)}, timeout, exclude=member)
        self.members.remove(member)
        member.close()

    def heal(self, timeout: float = 60.0) -> None:
        """Undo every fault: unfreeze and restart members, drop added members, wait until healthy."""
        for member in self.members:
            if member.is_paused:
                member.resume()
        missing = [m.name for m in self._original if m not in self.members]
        if missing:
            raise EtcdServerError(f"cannot heal: members {missing} were removed; start a new cluster")
        for member in self._original:
            if not member.is_running:
                member.start(wait=False)
        self.wait_healthy(timeout)
        for member in [m for m in self.members if m not in self._original]:
            self.remove_member(member, timeout)
        self.wait_healthy(timeout)

    def close(self) -> None:
        """Stop every member and remove their temporary directories. Idempotent."""
        for member in self.members:
            if member.is_paused:
                with contextlib.suppress(EtcdServerError):
                    member.resume()
            with contextlib.suppress(EtcdServerError):
                member.kill()
        for member in self.members:
            member.close()

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdCluster({self.members!r})"

    # -- internals ------------------------------------------------------------------------

    def _new_member(self, name: str) -> EtcdServer:
        return EtcdServer(
            name=name,
            binary=self._binary,
            extra_args=self._extra_args,
            host=self._host,
            initial_cluster_token=self._token,
        )

    @staticmethod
    def _initial_cluster(members: Sequence[EtcdServer]) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in members)

    def _member_ids(self, exclude: Optional[EtcdServer] = None) -> Dict[EtcdServer, int]:
        """Member id of each member, from the member list of the first running member that answers."""
        for source in self.running:
            if source is exclude:
                continue
            answer = self._call(source, "/v3/cluster/member/list", {}, timeout=1.0)
            if answer is None:
                continue
            by_peer = {m.peer_url: m for m in self.members}
            ids: Dict[EtcdServer, int] = {}
            for entry in answer.get("members", []):
                for url in entry.get("peerURLs", []):
                    if url in by_peer:
                        ids[by_peer[url]] = int(entry["ID"])
            return ids
        return {}

    def _require_call(
        self, path: str, body: Dict[str, Any], timeout: float, exclude: Optional[EtcdServer] = None
    ) -> Dict[str, Any]:
        """POST ``body`` to ``path`` on running members until one accepts it or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            for member in self.running:
                if member is not exclude:
                    answer = self._call(member, path, body, timeout=2.0)
                    if answer is not None:
                        return answer
            if time.monotonic() >= deadline:
                raise EtcdServerError(f"no member of {self.endpoints} accepted {path} within {timeout:g}s")
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _call(member: EtcdServer, path: str, body: Dict[str, Any], timeout: float) -> Optional[Dict[str, Any]]:
        """POST JSON to the member's gRPC gateway; None when it does not answer with success."""
        request = urllib.request.Request(
            member.client_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY_OPENER.open(request, timeout=timeout) as resp:
                answer: Dict[str, Any] = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return answer
