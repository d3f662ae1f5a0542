"""What the README's Install section says holds: the wheel builds, is named so, and carries the LICENSE."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_license_the_metadata_names_is_in_the_repository() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert re.search(r"^license = Apache-2.0$", (ROOT / "setup.cfg").read_text(), re.M)


def test_readme_recommends_no_install_from_the_package_index() -> None:
    assert not re.search(r"pip install ['\"]?fyerreg\[", README)
    assert "pip install .  " in README


@pytest.mark.slow
def test_the_wheel_the_readme_names_builds_and_carries_the_license(tmp_path: Path) -> None:
    [named] = re.findall(r"pip install dist/(fyerreg-[^ ]+\.whl)", README)
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(ROOT / "fyerreg", source / "fyerreg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [wheel] = list((tmp_path / "dist").glob("*.whl"))
    assert wheel.name == named
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        licenses = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        assert licenses, names
        assert "Apache License" in zf.read(licenses[0]).decode()
        assert "fyerreg/py.typed" in names
