"""Django ``runserver`` with its autoreloader (a watching parent, a serving child) and
HANDLE_SIGNALS: SIGTERM to the parent or to its whole process group deregisters at once,
not after the lease (30 s here)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, List

import pytest

from fyerreg.testing import EtcdServer, raw_client
from tests.helpers import child_pids, free_port, process_alive, wait_until

from .procs import EXAMPLES, instances, python

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

GONE_WITHIN = 3.0  # seconds; the lease is 30 s
PROGS = Path(__file__).parent / "progs"


class Closing:
    def __init__(self, thing: Any) -> None:
        self.thing = thing

    def close(self) -> None:
        self.thing.close()



@pytest.mark.parametrize(("target", "signum"), [("parent", signal.SIGTERM), ("group", signal.SIGTERM),
                                                ("group", signal.SIGINT)], ids=["parent", "group", "ctrl-c"])
def test_sigterm_to_runserver_with_its_autoreloader_deregisters_at_once(
        etcd_server: EtcdServer, procs: List[Any], target: str, signum: int) -> None:
    etcd_client = raw_client(etcd_server.endpoints)
    procs.append(Closing(etcd_client))
    port = free_port()
    site = python(str(EXAMPLES / "django_site" / "manage.py"), "runserver", f"127.0.0.1:{port}",
                  "--settings", "django_long_lease",
                  env={"FYERREG_ETCD": etcd_server.endpoint,
                       "PYTHONPATH": os.pathsep.join([str(PROGS), str(EXAMPLES / "django_site")])},
                  cwd=EXAMPLES / "django_site")
    procs.append(site)
    [record] = wait_until(lambda: instances(etcd_client, "hello-django"), timeout=30)
    assert record["address"] == f"127.0.0.1:{port}"
    [server] = child_pids(site.popen.pid)  # the autoreloader's child serves and registered

    if target == "parent":
        site.signal(signum)
    else:
        os.killpg(site.popen.pid, signum)
    wait_until(lambda: instances(etcd_client, "hello-django") == [], timeout=GONE_WITHIN,
               message=f"deregistration after signal {signum} to the {target}:\n{site.output()}")
    assert site.wait(15) == 0, site.output()
    wait_until(lambda: not process_alive(server), timeout=10, message="the serving child to end")
