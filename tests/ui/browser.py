"""A real headless Chromium driven by Selenium, or the reason the browser tests skip.

Debian's ``chromium`` and ``chromium-driver`` (installed by ``.ci/run`` as root where apt
works) and ``selenium`` from the ``test`` extra. Nothing is downloaded: the driver and
the browser are given by path, so Selenium Manager never runs. The flags keep Chromium
off the network (this machine's network is closed: background connections would be
refused by the dozen) and each browser gets a fresh profile directory, removed after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Iterator, Optional, Tuple

import pytest

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,1000",
)
_INSTALL = "(.ci/run installs them as root with: apt-get install chromium chromium-driver)"


def find_browser() -> Tuple[Optional[Tuple[str, str]], str]:
    """``((chromium, chromedriver), "")``, or ``(None, why not)``."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[test]')"
    browser = _program(os.environ.get("FYERREG_CHROMIUM"), "chromium", "chromium-browser")
    driver = _program(os.environ.get("FYERREG_CHROMEDRIVER"), "chromedriver")
    if browser is None:
        return None, f"no chromium on this machine {_INSTALL}"
    if driver is None:
        return None, f"no chromedriver on this machine {_INSTALL}"
    return (browser, driver), ""


def _program(given: Optional[str], *names: str) -> Optional[str]:
    """``given`` when it is an executable, else the first of ``names`` on PATH."""
    if given:
        return given if os.access(given, os.X_OK) else None
    return next((path for path in map(shutil.which, names) if path), None)


def chromium() -> Iterator[Any]:
    """A started headless Chromium (a Selenium WebDriver), quit and its profile removed afterwards."""
    found, why = find_browser()
    if found is None:
        pytest.skip(f"headless-browser test skipped: {why}")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="fyerreg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    try:
        try:
            driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        except WebDriverException as exc:
            pytest.skip(f"headless-browser test skipped: chromium did not start: {exc.msg or exc}")
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
