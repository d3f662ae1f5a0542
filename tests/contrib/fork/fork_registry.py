"""Run by test_fork_etcd in a fresh interpreter: an EtcdRegistry and a Discovery used in a forked child.

The pytest process carries gRPC state from hundreds of earlier tests, and forking it is a
different (and uncontrolled) experiment from forking an app that holds one registry;
this script is the app. Exit status 0 means every check passed.
"""

from __future__ import annotations

import os
import sys
import time

from fyerreg import Discovery, Instance
from fyerreg.registry.etcd import EtcdRegistry


def wait_until(predicate, timeout):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung")


def ids(instances):  # type: ignore[no-untyped-def]
    return [i.id for i in instances]


def main(endpoints: str, namespace: str) -> None:
    with EtcdRegistry(endpoints=endpoints.split(","), namespace=namespace, ttl=5) as registry, \
            Discovery(registry) as discovery:
        parent = Instance.new("svc", "1", "127.0.0.1:8001", id="parent")
        registry.register(parent)
        assert ids(discovery.instances("svc", "1")) == ["parent"]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                registry.register(Instance.new("svc", "1", "127.0.0.1:8002", id="child"))
                wait_until(lambda: ids(discovery.instances("svc", "1")) == ["child", "parent"], timeout=20)
                discovery.close()
                registry.close()  # deregisters the child's instance only
                code = 0
            finally:
                os._exit(code)
        assert wait_child(pid, timeout=60) == 0, "the child failed"
        assert ids(registry.list_services("svc", "1")) == ["parent"]
        assert registry.registration_state(parent).registered
        wait_until(lambda: ids(discovery.instances("svc", "1")) == ["parent"], timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
