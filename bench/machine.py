"""A description of the machine and software a benchmark run measured."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Dict, Optional


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> Optional[float]:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def etcd_version(binary: Optional[str]) -> str:
    """``etcd --version``'s first line, or what is known when no binary was started."""
    if not binary:
        return "external (given with --endpoints)"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def describe(*, etcd_binary: Optional[str], etcd_data_dir: Optional[str], mode: str) -> Dict[str, str]:
    """Facts about this run a reader needs to compare numbers: hardware, software, load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    memory = _memory_gib()
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical CPUs",
        "memory": f"{memory:.1f} GiB" if memory else "unknown",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "etcd": etcd_version(etcd_binary),
        "etcd data dir": _filesystem(etcd_data_dir) if etcd_data_dir else "external",
        "etcd-sdk-python": _version("etcd-sdk-python"),
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "fyerreg": f"{_version('fyerreg')} at commit {_git_commit()}",
        "load average at start": " / ".join(f"{x:.2f}" for x in load),
    }
    return facts


def _filesystem(path: str) -> str:
    """The filesystem type of ``path`` (fsync cost is etcd's write floor)."""
    best = ("", "unknown")
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and path.startswith(parts[1]) and len(parts[1]) >= len(best[0]):
            best = (parts[1], parts[2])
    return f"{path} on {best[1]}"


def markdown(facts: Dict[str, str]) -> str:
    """The facts as a two-column markdown list."""
    return "\n".join(f"- **{k}**: {v}" for k, v in facts.items())
