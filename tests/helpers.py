"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, TypeVar, Union

from fyerreg import Instance, Snapshot, Subscription
from fyerreg.testing import Certificates, _host, make_certificates

if typing.TYPE_CHECKING:
    import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, message: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate!r}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process, read from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def process_cmdline(pid: int) -> Optional[List[str]]:
    """The argv of ``pid`` from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def etcd_pids(client_url: str) -> List[int]:
    """Pids of live etcd processes listening for clients on exactly ``client_url``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = process_cmdline(int(entry))
        if argv and os.path.basename(argv[0]) == "etcd" and client_url in argv and process_alive(int(entry)):
            pids.append(int(entry))
    return pids


def child_pids(parent: int) -> List[int]:
    """Pids of the live children of ``parent``, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            children.append(int(entry))
    return children


def wait_child(pid: int, timeout: float = 30.0) -> int:
    """The exit code of forked child ``pid`` (-1 for a signal); kills it and fails when it runs past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung")


def fyerreg_threads() -> List[str]:
    """Names of the live threads the library started (named ``fyerreg-...``)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("fyerreg-") and t.is_alive())


@contextmanager
def no_fyerreg_thread_left(what: str = "close", prefix: str = "fyerreg-") -> Iterator[None]:
    """Fail unless every thread named ``prefix...`` started inside the block has ended when it exits."""
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.name.startswith(prefix) and t.is_alive()]
    assert not leaked, f"threads left running after {what}: {leaked}"


def next_snapshot(
    subscription: Subscription, predicate: Callable[[Snapshot], object] = lambda s: True, timeout: float = 10.0
) -> Snapshot:
    """Read ``subscription`` until a snapshot satisfies ``predicate``; return it.

    Fails when the subscription ends (sentinel) or nothing matching arrives within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            item = subscription.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise AssertionError(f"no matching snapshot within {timeout} s") from None
        if item is None:
            raise AssertionError("subscription ended before a matching snapshot arrived")
        if predicate(item):
            return item


def pending(subscription: Subscription) -> List[Optional[Snapshot]]:
    """The items queued in ``subscription`` right now, oldest first, without consuming them."""
    return subscription.peek()


def ids(instances: Iterable[Instance]) -> List[str]:
    """The ids of ``instances``, in order."""
    return [inst.id for inst in instances]


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on now."""
    return _host.free_port("127.0.0.1")


def new_certificates(tmp_path_factory: pytest.TempPathFactory, name: str) -> Certificates:
    """A new CA and its certificates in a fresh temp directory ``name`` (the test skipped without ``cryptography``)."""
    import pytest  # not at the top: scripts the tests run import this module too

    pytest.importorskip("cryptography")
    return make_certificates(str(tmp_path_factory.mktemp(name)))


class Registries:
    """Makes registries that share one backend (a store, or an etcd namespace) and closes them all.

    ``factory(**options)`` makes one; ``namespace`` is the etcd namespace they share, if any.
    """

    def __init__(self, factory: Callable[..., Any], name: str = "", namespace: Optional[str] = None) -> None:
        self.name = name
        self.namespace = namespace
        self._factory = factory
        self.made: List[Any] = []

    def new(self, **options: Any) -> Any:
        """A fresh registry on this backend."""
        registry = self._factory(**options)
        self.made.append(registry)
        return registry

    def close(self, timeout: Optional[float] = None) -> None:
        """Close every registry made, the last one first."""
        for registry in reversed(self.made):
            registry.close(timeout=timeout)

    def __repr__(self) -> str:
        return f"<Registries {self.name}>"


def make_instance(id: str, *, service: str = "svc", version: str = "v1", host: str = "127.0.0.1", port: int = 8000,
                  **fields: Any) -> Instance:
    """A valid instance at ``host:port``; ``fields`` set the others (weight, status, metadata...)."""
    return Instance(id=id, service=service, version=version, address=f"{host}:{port}", **fields)


_CTRL_C = signal.SIGINT  # the class below has a signal() method


class StillRunning(subprocess.TimeoutExpired):
    """A child that did not exit in time; its message carries what it printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}; its output so far:\n{self.output}"


class Proc:
    """A child process whose output is read line by line in the background.

    Its stderr is merged into its stdout unless ``separate_stderr``: then stderr lines go to
    ``errors`` and only stdout lines are waited for. ``env`` adds to this process's environment,
    or replaces it with ``inherit_env=False``. It runs in a session of its own, so ``close()``
    kills its children too.
    """

    def __init__(
        self, argv: Sequence[str], *, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
        stdin: bool = False, separate_stderr: bool = False, inherit_env: bool = True,
    ) -> None:
        self.argv = list(argv)
        base = dict(os.environ) if inherit_env else {}
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env={**base, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}, cwd=cwd,
            start_new_session=True,
        )
        self.lines: List[str] = []
        self.errors: List[str] = []
        self._queue: queue.Queue[Optional[str]] = queue.Queue()
        assert self.popen.stdout is not None
        self._readers = [threading.Thread(target=self._read, args=(self.popen.stdout, self._line), daemon=True)]
        if self.popen.stderr is not None:
            self._readers.append(
                threading.Thread(target=self._read, args=(self.popen.stderr, self._error), daemon=True))
        for reader in self._readers:
            reader.start()

    def _line(self, line: Optional[str]) -> None:
        if line is not None:
            self.lines.append(line)
        self._queue.put(line)

    def _error(self, line: Optional[str]) -> None:
        if line is not None:
            self.errors.append(line)

    @staticmethod
    def _read(stream: IO[bytes], sink: Callable[[Optional[str]], None]) -> None:
        for raw in stream:
            sink(raw.decode("utf-8", "replace").rstrip("\n"))
        sink(None)

    def next_line(self, timeout: float = 30.0) -> str:
        """The next output line; fails when none comes within ``timeout`` or the output ends."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.argv} printed nothing within {timeout}s:\n" + self.output()) from None
        if line is None:
            self._queue.put(None)
            raise AssertionError(f"{self.argv} exited ({self.popen.wait()}):\n" + self.output())
        return line

    def wait_for(self, match: Union[str, Callable[[str], bool]], timeout: float = 30.0) -> str:
        """The first line (from now on) containing ``match`` (a text) or satisfying it (a predicate)."""
        wanted = (lambda line: match in line) if isinstance(match, str) else match
        while True:
            line = self.next_line(timeout)
            if wanted(line):
                return line

    def rest(self, timeout: float = 30.0) -> List[str]:
        """The output lines not read yet, up to its end."""
        lines = []
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                self._queue.put(None)
                return lines
            lines.append(line)

    def send_line(self, text: str) -> None:
        """Write one line to the child's stdin (started with ``stdin=True``)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode() + b"\n")
        self.popen.stdin.flush()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Its exit code. After ``timeout`` the child is aborted and :class:`StillRunning` raised,
        with what it printed (a Python child's thread stacks included) in its message."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            # A Python child prints where each of its threads is (PYTHONFAULTHANDLER) as it aborts.
            self.popen.send_signal(signal.SIGABRT)
            try:
                self.popen.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
            for reader in self._readers:
                reader.join(2.0)
            raise StillRunning(exc.cmd, exc.timeout, output=self.output()) from None
        for reader in self._readers:
            reader.join(10)
        return code

    def stop(self, signum: int = _CTRL_C, timeout: float = 30.0) -> int:
        """Send ``signum`` (when still running) and return the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        return self.wait(timeout)

    def output(self) -> str:
        return "\n".join(self.lines[-60:] + self.errors[-60:])

    def close(self) -> None:
        """Kill the whole process group (gunicorn workers and registrar included, even orphaned ones)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait(30)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


HEAVY_MODULES = ("grpc", "pyetcd", "fyerreg.registry.etcd")
"""What must not load until the etcd backend is used."""


def imports_in_fresh_interpreter(code: str) -> Set[str]:
    """The modules loaded after running ``code`` in a new interpreter (nothing imported before)."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


async def loop_ticks_while(awaitable: Any) -> int:
    """How many 10 ms ticks the running event loop made while ``awaitable`` was pending (few: it was blocked)."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        await awaitable
    finally:
        done.set()
        await task
    return ticks
