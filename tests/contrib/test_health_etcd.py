"""Health-gated registration against a real etcd, with real servers in processes of their own.

A Flask app (werkzeug), an ASGI app (uvicorn), a gRPC server and a gunicorn-served app (its
registrar GETs /healthz) whose health check starts
failing are DISABLED in etcd within interval x K + 1 s and no longer picked by a Discovery
in this (another) process; they are ENABLED again after M good checks. A check that raises
counts as a failure and the checks go on. A gRPC server's health service says NOT_SERVING
while it is disabled.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from fyerreg import EtcdRegistry
from fyerreg.discovery import Discovery
from fyerreg.errors import NoInstanceAvailableError
from tests.helpers import Proc, free_port, wait_until

from .procs import instances

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PROGS = Path(__file__).parent / "progs"
INTERVAL = 0.3
TIMEOUT = 0.4
FAILURES = 3
SUCCESSES = 2
DISABLED_WITHIN = INTERVAL * FAILURES + 1.0  # the acceptance bound


@pytest.fixture
def discovery(etcd_endpoints: List[str]) -> Iterator[Discovery]:
    registry = EtcdRegistry(endpoints=etcd_endpoints)
    found = Discovery(registry)
    try:
        yield found
    finally:
        found.close()
        registry.close()


def environment(etcd_endpoints: List[str], service: str, state: Path, **extra: str) -> Dict[str, str]:
    return {"FYERREG_ETCD": ",".join(etcd_endpoints), "SERVICE": service, "HEALTH_STATE": str(state),
            "HEALTH_INTERVAL": str(INTERVAL), "HEALTH_TIMEOUT": str(TIMEOUT), "HEALTH_FAILURES": str(FAILURES),
            "HEALTH_SUCCESSES": str(SUCCESSES), **extra}


def start(kind: str, etcd_endpoints: List[str], service: str, state: Path) -> Proc:
    env = environment(etcd_endpoints, service, state)
    if kind == "flask":
        return Proc([sys.executable, str(PROGS / "health_apps.py"), "flask", str(free_port())], env=env)
    if kind == "grpc":
        return Proc([sys.executable, str(PROGS / "health_apps.py"), "grpc"], env=env)
    if kind == "gunicorn":
        return Proc([sys.executable, "-m", "gunicorn", "-c", str(PROGS / "gunicorn_health.conf.py")],
                    env={**env, "PORT": str(free_port())})
    return Proc([sys.executable, "-m", "uvicorn", "--app-dir", str(PROGS), "--port", "0", "health_apps:asgi_app"],
                env={**env, "HEALTH_ASGI": "1"})


def statuses(etcd_client: Any, service: str) -> List[int]:
    return [record["status"] for record in instances(etcd_client, service)]


def picked(discovery: Discovery, service: str) -> bool:
    try:
        discovery.select(service)
    except NoInstanceAvailableError:
        return False
    return True


def set_state(state: Path, what: str) -> float:
    state.write_text(what)
    return time.monotonic()


def wait_status(etcd_client: Any, service: str, status: int, within: float, proc: Proc) -> float:
    began = time.monotonic()
    wait_until(lambda: statuses(etcd_client, service) == [status], timeout=within,
               message=f"{service} to read status {status} in etcd:\n{proc.output()}")
    return time.monotonic() - began


@pytest.mark.parametrize("kind", ["flask", "asgi", "grpc", "gunicorn"])
def test_a_server_whose_check_fails_is_disabled_in_etcd_and_not_picked_then_enabled_after_it_recovers(
        kind: str, etcd_endpoints: List[str], etcd_client: Any, discovery: Discovery, procs: List[Proc],
        tmp_path: Path) -> None:
    service = f"health-{kind}"
    state = tmp_path / "state"
    set_state(state, "ok")
    proc = start(kind, etcd_endpoints, service, state)
    procs.append(proc)
    wait_until(lambda: statuses(etcd_client, service) == [1], timeout=20,
               message=f"{service} registered enabled:\n{proc.output()}")
    proc.wait_for("check 1 ok", timeout=10)
    assert picked(discovery, service)

    serving = grpc_health(proc) if kind == "grpc" else None
    assert serving is None or serving() == "SERVING"

    set_state(state, "fail")
    wait_status(etcd_client, service, 0, DISABLED_WITHIN, proc)
    wait_until(lambda: not picked(discovery, service), timeout=2, message="the Discovery to stop picking it")
    if serving is not None:
        wait_until(lambda: serving() == "NOT_SERVING", timeout=2, message="grpc.health.v1 to say NOT_SERVING")

    set_state(state, "ok")
    wait_status(etcd_client, service, 1, INTERVAL * SUCCESSES + 1.0, proc)
    wait_until(lambda: picked(discovery, service), timeout=2, message="the Discovery to pick it again")
    if serving is not None:
        wait_until(lambda: serving() == "SERVING", timeout=2, message="grpc.health.v1 to say SERVING again")


def grpc_health(proc: Proc) -> Callable[[], str]:
    """What the gRPC server's ``grpc.health.v1`` says of the whole server, asked anew each call."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    line = wait_until(lambda: next((seen for seen in proc.lines if seen.startswith("port ")), ""), timeout=10,
                      message=f"the server to print its port:\n{proc.output()}")
    port = int(line.split()[1])

    def ask() -> str:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    return ask


def test_a_raising_check_counts_as_a_failure_and_never_kills_the_thread(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc], tmp_path: Path) -> None:
    service = "health-raising"
    state = tmp_path / "state"
    set_state(state, "ok")
    proc = start("flask", etcd_endpoints, service, state)
    procs.append(proc)
    wait_until(lambda: statuses(etcd_client, service) == [1], timeout=20, message=proc.output())

    set_state(state, "raise")
    wait_status(etcd_client, service, 0, DISABLED_WITHIN, proc)
    set_state(state, "ok")  # the checks went on after the exceptions: recovery is seen
    wait_status(etcd_client, service, 1, INTERVAL * SUCCESSES + 1.0, proc)
