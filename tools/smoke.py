"""Install fyerreg as a user would, into a fresh venv, and check what the release promises.

    python tools/smoke.py dist     # dist/ holds what `make dist` built

In a venv made in a temp dir (removed afterwards): install dist/fyerreg-<version>-*.whl, run
examples/memory_quickstart.py, import fyerreg without loading gRPC, `fyerreg --version`, and
find the LICENSE through importlib.metadata. Then reinstall the same venv with `pip install .`
of a clean export of HEAD (what a fresh clone holds) and check the import and the LICENSE again.
Exits non-zero with the failing step's output.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from pathlib import Path
from typing import List, Sequence

ROOT = Path(__file__).resolve().parent.parent

NO_GRPC = "import fyerreg, sys; assert 'grpc' not in sys.modules, sorted(m for m in sys.modules if 'grpc' in m)"
LICENSE = """\
import importlib.metadata as md
meta = md.metadata("fyerreg")
assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
assert meta.get_all("License-File") == ["LICENSE"], meta.get_all("License-File")
[path] = [f for f in md.files("fyerreg") or [] if f.name == "LICENSE"]
assert "Apache License" in path.read_text() and "END OF TERMS AND CONDITIONS" in path.read_text(), path
print("license:", path)
"""


class SmokeError(Exception):
    """A step failed; the message holds its command and output."""


def version() -> str:
    """fyerreg's version, read from the source the way setuptools reads it (no import)."""
    text = (ROOT / "fyerreg" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if found is None:
        raise SmokeError("no __version__ in fyerreg/__init__.py")
    return found.group(1)


def run(cmd: Sequence[str], cwd: Path, timeout: float = 300) -> str:
    """Run one step; its stdout, or SmokeError with everything it printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    result = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SmokeError(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result.stdout


def check_installed(python: str, where: Path, expected: str) -> List[str]:
    """The checks every install must pass; lines to print."""
    out = run([python, "-c", "import fyerreg; print(fyerreg.__file__, fyerreg.__version__)"], where)
    path, found = out.split()
    if not path.startswith(str(Path(python).parent.parent)):
        raise SmokeError(f"fyerreg imported from {path}, not from the fresh venv")
    if found != expected:
        raise SmokeError(f"fyerreg.__version__ is {found}, expected {expected}")
    run([python, "-c", NO_GRPC], where)
    return [f"import fyerreg: {path}, no grpc loaded", run([python, "-c", LICENSE], where).strip()]


def smoke(dist: Path, work: Path) -> List[str]:
    """Every check, in a venv under work; lines to print."""
    expected = version()
    wheels = sorted(dist.glob(f"fyerreg-{expected}-*.whl"))
    sdists = sorted(dist.glob(f"fyerreg-{expected}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise SmokeError(f"expected one wheel and one sdist of {expected} in {dist}, found {os.listdir(dist)}")
    venv.EnvBuilder(with_pip=True).create(work / "venv")
    python = str(work / "venv" / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    lines = [f"wheel: {wheels[0].name}; sdist: {sdists[0].name}"]

    run([*pip, "install", str(wheels[0].resolve())], work)
    out = run([python, str(ROOT / "examples" / "memory_quickstart.py")], work)
    if "snapshot:" not in out:
        raise SmokeError(f"the quickstart printed no snapshot:\n{out}")
    lines.append("quickstart: " + " | ".join(out.strip().splitlines()))
    printed = run([str(work / "venv" / "bin" / "fyerreg"), "--version"], work).strip()
    if printed != f"fyerreg {expected}":
        raise SmokeError(f"fyerreg --version printed {printed!r}, expected 'fyerreg {expected}'")
    lines.append(f"fyerreg --version: {printed}")
    lines += check_installed(python, work, expected)

    with tarfile.open(sdists[0]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "fyerreg/py.typed"} - names
    if missing:
        raise SmokeError(f"the sdist lacks {sorted(missing)}")

    clone = work / "clone"  # HEAD as a fresh clone has it: no build/, .venv or egg-info
    clone.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True, timeout=60).stdout
    _untar(archive, clone)
    run([*pip, "install", "--no-deps", "--force-reinstall", "."], clone)
    lines += ["pip install . (HEAD): " + line for line in check_installed(python, work, expected)]
    return lines


def _untar(archive: bytes, into: Path) -> None:
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="the directory `make dist` built into")
    args = parser.parse_args(list(argv) or None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fyerreg-smoke-") as work:
        try:
            lines = smoke(args.dist.resolve(), Path(work))
        except (SmokeError, subprocess.SubprocessError) as exc:
            sys.stderr.write(f"smoke: FAILED: {exc}\n")
            return 1
    sys.stdout.write("".join(f"smoke: {line}\n" for line in lines))
    sys.stdout.write(f"smoke: passed in {time.monotonic() - started:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
