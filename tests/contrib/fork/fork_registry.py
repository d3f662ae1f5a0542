"""An EtcdRegistry and a Discovery used in a forked child (run as ``python -m tests.contrib.fork.fork_registry``).

The pytest process carries gRPC state from hundreds of earlier tests, and forking it is a
different (and uncontrolled) experiment from forking an app that holds one registry;
this script is the app. Exit status 0 means every check passed.
"""

from __future__ import annotations

import os
import sys

from fyerreg import Discovery, Instance
from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import ids, wait_child, wait_until


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
