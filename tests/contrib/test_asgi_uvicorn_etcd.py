"""contrib.asgi under real uvicorn and FastAPI against a real etcd: port 0 or fixed, SIGTERM and SIGINT
(deregistered at once, requests answered through the drain), SIGKILL (gone with its lease),
``--workers 2`` (one instance per worker process) and ``--reload`` (the served child registers,
the watching parent never does, a reload leaves no stale instance)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from fyerreg.testing import EtcdServer, raw_client
from tests.helpers import Proc, child_pids, free_port, wait_until

from .procs import EXAMPLES, get_json, instances

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PROGS = Path(__file__).parent / "progs"
GONE_WITHIN = 1.0  # seconds after SIGTERM: the acceptance bound (the lease is 5 s or more)
TTL = 3  # seconds, for the SIGKILL tests: a killed process's record must be gone within it


class Closing:
    def __init__(self, thing: Any) -> None:
        self.thing = thing

    def close(self) -> None:
        self.thing.close()


def uvicorn(app: str, *args: str, app_dir: Path = PROGS, env: Optional[Dict[str, str]] = None) -> Proc:
    return Proc([sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), app, *args], env=env)


def records(etcd_client: Any, service: str) -> List[Dict[str, Any]]:
    return instances(etcd_client, service)


def pids(etcd_client: Any, service: str) -> List[int]:
    return sorted(int(r["metadata"]["pid"]) for r in records(etcd_client, service))


def served_port(proc: Proc) -> int:
    line = proc.wait_for("Uvicorn running on")
    match = re.search(r"http://[^ ]+:(\d+)", line)
    assert match, line
    return int(match.group(1))


def env_for(etcd_endpoints: List[str], service: str, **extra: str) -> Dict[str, str]:
    return {"FYERREG_ETCD": ",".join(etcd_endpoints), "ASGI_SERVICE": service, **extra}


def gone_within(etcd_client: Any, service: str, timeout: float, proc: Proc) -> float:
    began = time.monotonic()
    wait_until(lambda: records(etcd_client, service) == [], timeout=timeout,
               message=f"the records of {service} to go:\n{proc.output()}")
    return time.monotonic() - began


@pytest.mark.parametrize("port", ["0", "fixed"])
def test_the_fastapi_example_registers_once_is_listed_and_is_gone_within_a_second_of_sigterm(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc], port: str) -> None:
    asked = "0" if port == "0" else str(free_port())
    app = uvicorn("fastapi_app:app", "--port", asked, app_dir=EXAMPLES,
                  env={"FYERREG_ETCD": ",".join(etcd_endpoints)})
    procs.append(app)
    bound = served_port(app)
    assert asked in ("0", str(bound))
    [record] = wait_until(lambda: records(etcd_client, "hello-fastapi"), timeout=30)
    assert record["address"] == f"127.0.0.1:{bound}"
    [(_, meta)] = etcd_client.get_prefix("/fyerrpc/services/hello-fastapi/")
    assert meta.version == 1, "the record was written more than once"
    assert get_json(f"http://{record['address']}/hello/x") == {"message": "Hello x", "pid": app.popen.pid}

    listed = subprocess.run([sys.executable, "-m", "fyerreg", "list", "hello-fastapi", "--json",
                             "--endpoints", ",".join(etcd_endpoints)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [i["address"] for i in json.loads(listed.stdout)] == [record["address"]]

    app.signal(signal.SIGTERM)
    gone_within(etcd_client, "hello-fastapi", GONE_WITHIN, app)
    assert app.wait(15) == -signal.SIGTERM, app.output()  # then uvicorn's own SIGTERM: graceful, then exit


@pytest.mark.parametrize(("target", "signum"), [("asgi_app:fastapi_app", signal.SIGTERM),
                                                ("asgi_app:fastapi_app", signal.SIGINT),
                                                ("asgi_app:raw_app", signal.SIGTERM)],
                         ids=["fastapi-sigterm", "fastapi-sigint", "bare-app-sigterm"])
def test_a_signal_deregisters_at_once_and_requests_are_answered_through_the_drain(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc], target: str, signum: int) -> None:
    service = f"asgi-{target.split(':')[1].replace('_', '-')}-{signum}"
    app = uvicorn(target, "--port", "0", env=env_for(etcd_endpoints, service, ASGI_DRAIN="3"))
    procs.append(app)
    [record] = wait_until(lambda: records(etcd_client, service), timeout=30)
    url = f"http://{record['address']}/pid"
    assert get_json(url) == {"pid": app.popen.pid}

    signalled = time.monotonic()
    app.signal(signum)
    gone_within(etcd_client, service, GONE_WITHIN, app)
    assert get_json(url) == {"pid": app.popen.pid}  # deregistered, and still serving
    assert app.popen.poll() is None
    app.wait(15)
    assert time.monotonic() - signalled >= 3.0, "the server stopped before the drain ended"
    if target.endswith("fastapi_app"):
        assert f"app {app.popen.pid} stopped" in app.output()  # the app's own lifespan ran its shutdown


def test_a_sigkilled_server_is_gone_with_its_lease(etcd_endpoints: List[str], etcd_client: Any,
                                                   procs: List[Proc]) -> None:
    app = uvicorn("asgi_app:fastapi_app", "--port", "0", env=env_for(etcd_endpoints, "asgi-killed", ASGI_TTL=str(TTL)))
    procs.append(app)
    wait_until(lambda: records(etcd_client, "asgi-killed"), timeout=30)
    app.signal(signal.SIGKILL)
    gone_within(etcd_client, "asgi-killed", TTL, app)


def test_each_of_two_workers_registers_its_own_instance_and_a_killed_one_goes_with_its_lease(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc]) -> None:
    port = free_port()
    service = "asgi-workers"
    app = uvicorn("asgi_app:fastapi_app", "--port", str(port), "--workers", "2",
                  env=env_for(etcd_endpoints, service, ASGI_TTL=str(TTL)))
    procs.append(app)
    workers = wait_until(lambda: len(pids(etcd_client, service)) == 2 and pids(etcd_client, service), timeout=60)
    assert set(workers) <= set(child_pids(app.popen.pid)), "the supervisor itself registered"
    assert {r["address"] for r in records(etcd_client, service)} == {f"127.0.0.1:{port}"}

    for victim in workers:
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda victim=victim: victim not in pids(etcd_client, service), timeout=TTL,  # type: ignore[misc]
                   message=f"worker {victim}'s record to go with its lease")
    # uvicorn replaces each killed worker, and the replacement registers itself.
    wait_until(lambda: len(pids(etcd_client, service)) == 2 and not set(pids(etcd_client, service)) & set(workers),
               timeout=60, message=app.output())

    app.signal(signal.SIGTERM)
    gone_within(etcd_client, service, GONE_WITHIN + 2.0, app)  # each worker deregisters on the SIGTERM passed on
    assert app.wait(30) == 0, app.output()


def test_under_reload_the_served_child_registers_and_a_reload_leaves_no_stale_instance(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc], tmp_path: Path) -> None:
    service = "asgi-reload"
    source = tmp_path / "asgi_app.py"
    shutil.copy(PROGS / "asgi_app.py", source)
    app = uvicorn("asgi_app:fastapi_app", "--port", "0", "--reload", "--reload-dir", str(tmp_path),
                  app_dir=tmp_path, env=env_for(etcd_endpoints, service, ASGI_TTL="30"))
    procs.append(app)
    [first] = wait_until(lambda: pids(etcd_client, service), timeout=60)
    assert first != app.popen.pid and first in child_pids(app.popen.pid), "not the served child"

    source.write_text(source.read_text() + "\n# changed\n")
    wait_until(lambda: (lambda now: len(now) == 1 and now[0] != first)(pids(etcd_client, service)), timeout=30,
               message=f"the reloaded child alone to be registered (the lease is 30 s):\n{app.output()}")
    [second] = pids(etcd_client, service)
    assert second in child_pids(app.popen.pid)
    assert get_json(f"http://{records(etcd_client, service)[0]['address']}/pid") == {"pid": second}

    app.signal(signal.SIGTERM)
    gone_within(etcd_client, service, GONE_WITHIN + 2.0, app)
    app.wait(30)


def test_requests_reach_the_example_by_its_registered_address(etcd_endpoints: List[str], etcd_client: Any,
                                                              procs: List[Proc]) -> None:
    app = Proc([sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(free_port())],
               env={"FYERREG_ETCD": ",".join(etcd_endpoints)})
    procs.append(app)
    [record] = wait_until(lambda: records(etcd_client, "hello-fastapi"), timeout=30)
    with urllib.request.urlopen(f"http://{record['address']}/hello/main", timeout=10) as reply:
        assert json.load(reply)["message"] == "Hello main"
    app.signal(signal.SIGINT)
    gone_within(etcd_client, "hello-fastapi", GONE_WITHIN, app)
    app.wait(15)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_started_while_etcd_is_down_it_serves_and_is_registered_once_etcd_answers(
        etcd_server: EtcdServer, procs: List[Proc]) -> None:
    etcd_server.stop()
    port = free_port()
    app = uvicorn("asgi_app:fastapi_app", "--port", str(port), env=env_for([etcd_server.endpoint], "asgi-late"))
    procs.append(app)
    url = f"http://127.0.0.1:{port}/pid"
    wait_until(lambda: answers(url), timeout=30, message="the app to serve while etcd is down")
    etcd_server.start()
    client = raw_client(etcd_server.endpoints)
    procs.append(Closing(client))
    [record] = wait_until(lambda: records(client, "asgi-late"), timeout=30, message=app.output())
    assert record["address"] == f"127.0.0.1:{port}"
    app.signal(signal.SIGTERM)
    gone_within(client, "asgi-late", GONE_WITHIN, app)
    app.wait(15)


def test_sigterm_while_etcd_is_down_ends_the_server_promptly(etcd_server: EtcdServer, procs: List[Proc]) -> None:
    etcd_server.stop()
    port = free_port()
    app = uvicorn("asgi_app:fastapi_app", "--port", str(port), env=env_for([etcd_server.endpoint], "asgi-never"))
    procs.append(app)
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/pid"), timeout=30)
    signalled = time.monotonic()
    app.signal(signal.SIGTERM)
    assert app.wait(15) == -signal.SIGTERM, app.output()
    assert time.monotonic() - signalled < 3.0 + 0.5 + 3.0  # a registration in flight is waited for 3 s at most
