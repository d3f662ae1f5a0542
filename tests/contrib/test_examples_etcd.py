"""The examples as real procs against a real etcd: greeter server/client, Flask, Django,
gunicorn with 2 workers, requests. Each registers when serving and disappears when stopped,
well before its lease (5 s) could expire."""

from __future__ import annotations

import re
import signal
import sys
from typing import Any, List

import pytest

from tests.helpers import Proc, free_port, wait_until

from .procs import EXAMPLES, ask_concurrently, get_json, instances, python

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

GONE_WITHIN = 3.0  # seconds: less than the examples' 5 s TTL, so only deregistration explains it



def endpoints_arg(etcd_endpoints: List[str]) -> str:
    return ",".join(etcd_endpoints)


def test_greeter_server_and_client_end_to_end(etcd_endpoints: List[str], etcd_client: Any,
                                              procs: List[Proc]) -> None:
    etcd = endpoints_arg(etcd_endpoints)
    servers = {}
    for name in ("a", "b"):
        proc = python(str(EXAMPLES / "greeter_server.py"), "--port", str(free_port()), "--name", name, "--etcd", etcd)
        procs.append(proc)
        proc.wait_for("serving and registered")
        servers[name] = proc
    records = instances(etcd_client, "greeter-service")
    assert sorted(r["metadata"]["name"] for r in records) == ["a", "b"]
    assert all(r["metadata"]["region"] == "cn-shanghai" and r["status"] == 1 for r in records)

    client = python(str(EXAMPLES / "greeter_client.py"), "--etcd", etcd, "--count", "4")
    procs.append(client)
    assert client.wait() == 0, client.output()
    replies = [line for line in client.lines if line.startswith("Hello")]
    assert len(replies) == 4
    assert {re.sub(r".*from greeter ", "", line) for line in replies} == {"a", "b"}

    servers["a"].signal(signal.SIGTERM)
    assert servers["a"].wait() == 0
    assert "greeter a stopped" in servers["a"].output()
    wait_until(lambda: [r["metadata"]["name"] for r in instances(etcd_client, "greeter-service")] == ["b"],
               timeout=GONE_WITHIN)


def test_flask_app_registers_when_serving_and_disappears_on_sigterm(etcd_endpoints: List[str], etcd_client: Any,
                                                                    procs: List[Proc]) -> None:
    port = free_port()
    app = python(str(EXAMPLES / "flask_app.py"), "--port", str(port), "--etcd", endpoints_arg(etcd_endpoints))
    procs.append(app)
    [record] = wait_until(lambda: instances(etcd_client, "hello-flask"), timeout=30)
    assert record["address"] == f"127.0.0.1:{port}"

    client = python(str(EXAMPLES / "requests_client.py"), "--etcd", endpoints_arg(etcd_endpoints), "--count", "3")
    procs.append(client)
    assert client.wait() == 0, client.output()
    assert len([line for line in client.lines if line.startswith("Hello request-")]) == 3

    app.signal(signal.SIGTERM)
    wait_until(lambda: instances(etcd_client, "hello-flask") == [], timeout=GONE_WITHIN)
    assert app.wait() == -signal.SIGTERM  # deregistered first, then SIGTERM's default action


def test_django_site_registers_under_runserver_and_disappears_on_sigterm(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc]) -> None:
    port = free_port()
    site = python(str(EXAMPLES / "django_site" / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload",
                  env={"FYERREG_ETCD": endpoints_arg(etcd_endpoints)}, cwd=EXAMPLES / "django_site")
    procs.append(site)
    [record] = wait_until(lambda: instances(etcd_client, "hello-django"), timeout=30)
    assert record["address"] == f"127.0.0.1:{port}"
    site.signal(signal.SIGTERM)
    wait_until(lambda: instances(etcd_client, "hello-django") == [], timeout=GONE_WITHIN)
    site.wait()


def test_gunicorn_with_two_workers_registers_one_instance_and_removes_it_on_sigterm(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc]) -> None:
    port = free_port()
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py")],
                  env={"PORT": str(port), "FYERREG_ETCD": endpoints_arg(etcd_endpoints)})
    procs.append(master)
    [record] = wait_until(lambda: instances(etcd_client, "hello-flask"), timeout=30)
    assert record["address"] == f"127.0.0.1:{port}"

    # Both workers answer; each uses discovery with its own etcd client, created after the fork.
    pids, peers = set(), []

    def ask() -> None:
        pids.add(get_json(f"http://127.0.0.1:{port}/hello/x")["pid"])
        peers.append(get_json(f"http://127.0.0.1:{port}/peers"))

    def both_workers_answered() -> bool:
        ask_concurrently(ask)
        return len(pids) == 2

    wait_until(both_workers_answered, timeout=30, interval=0.05)
    assert all(p == [f"127.0.0.1:{port}"] for p in peers)
    assert len(instances(etcd_client, "hello-flask")) == 1, "one instance per master, not one per worker"

    master.signal(signal.SIGTERM)
    wait_until(lambda: instances(etcd_client, "hello-flask") == [], timeout=GONE_WITHIN)
    assert master.wait() == 0, master.output()


def test_greeter_demo_loses_no_call_when_servers_die(procs: List[Proc]) -> None:
    demo = python(str(EXAMPLES / "demo.py"), "greeter")  # what `make demo` runs last
    procs.append(demo)
    assert demo.wait(120) == 0, demo.output()
    out = demo.output()
    assert "45 calls, 0 failed" in out
    kill_line = out.index(">> SIGKILL greeter a")
    assert "answered by greeter a" in out[:kill_line]
    assert ">> SIGTERM greeter b" in out
    assert "greeter b exited with 0" in out and out.rstrip().endswith("etcd stopped; demo done")


def test_a_killed_gunicorn_master_is_deregistered_by_its_registrar(etcd_endpoints: List[str], etcd_client: Any,
                                                                  procs: List[Proc]) -> None:
    port = free_port()
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py")],
                  env={"PORT": str(port), "FYERREG_ETCD": endpoints_arg(etcd_endpoints)})
    procs.append(master)
    wait_until(lambda: instances(etcd_client, "hello-flask"), timeout=30)
    master.signal(signal.SIGKILL)
    wait_until(lambda: instances(etcd_client, "hello-flask") == [], timeout=GONE_WITHIN)
