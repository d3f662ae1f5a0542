"""``fyerreg ui`` in a real headless Chromium: what is registered after the page loaded shows within 1 s.

The 1 s bound is the issue's own acceptance number, not a performance goal: the page is
pushed each change by server-sent events (no reload, no polling), which takes some
milliseconds; a page that polled or needed a reload would miss it. The run saves a
screenshot (``$FYERREG_ARTIFACTS/dashboard.png``, else in the test's temporary directory):
README's picture is one of these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from fyerreg import Status
from tests.cli.support import cli_env, cli_process
from tests.helpers import make_instance

from .browser import chromium

SHOWN_WITHIN = 1.0
"""Seconds (the issue's number) from a registration returning to the page showing it."""
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
_URL = re.compile(r"at (http://\S+/)")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def dashboard_url(etcd_endpoints: List[str], namespace: str, procs: List[Any]) -> str:
    proc = cli_process("ui", "--bind", "127.0.0.1:0", env=cli_env(etcd_endpoints, namespace))
    procs.append(proc)
    match = _URL.search(proc.wait_for("dashboard of namespace"))
    assert match
    return match.group(1)


def _wait(driver: Any, condition: Any, what: str, timeout: float = SHOWN_WITHIN) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition, message=f"{what} within {timeout}s")


def _rows(driver: Any, service: str) -> List[str]:
    """The instances of ``service`` on the page (read in one script: the page re-renders as events come)."""
    return list(driver.execute_script(
        "var name = arguments[0], box = Array.from(document.querySelectorAll('section.service'))"
        ".filter(function (s) { return s.dataset.service === name; })[0];"
        "return box ? Array.from(box.querySelectorAll('tr[data-instance]')).map(function (r) {"
        " return r.dataset.instance; }) : [];", service))


def _summary(driver: Any) -> Dict[str, str]:
    """Service -> its instance count, from the overview table."""
    return dict(driver.execute_script(
        "var out = {}; document.querySelectorAll('#summary tr[data-service]').forEach(function (r) {"
        " out[r.dataset.service] = r.querySelector('td.count').textContent; }); return out;"))


def _text(driver: Any, selector: str) -> str:
    """The text of the element ``selector`` selects ('' when none)."""
    return str(driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';", selector))


def _artifact(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FYERREG_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "dashboard.png"


def test_the_page_shows_joins_and_leaves_within_a_second_without_reload(
        driver: Any, dashboard_url: str, registry: Any, etcd_client: Any, namespace: str, tmp_path: Path) -> None:
    registry.register(make_instance("orders-1", service="orders", host="10.0.0.11", port=8080,
                                    metadata={"zone": "eu-1"}))
    registry.register(make_instance("orders-2", service="orders", host="10.0.0.12", port=8080, weight=50,
                                    metadata={"zone": "eu-2"}))
    # A record bound to no lease, as Go's UpdateService leaves them: it never expires, so it is flagged stale.
    ghost = make_instance("orders-0", service="orders", host="10.0.0.10", port=8080, metadata={"zone": "eu-1"})
    etcd_client.put(f"/{namespace}/services/orders/v1/orders-0", ghost.to_json())
    driver.get(dashboard_url)
    _wait(driver, lambda d: _rows(d, "orders") == ["v1/orders-0", "v1/orders-1", "v1/orders-2"], "the page loaded",
          timeout=15)
    _wait(driver, lambda d: _text(d, "#status") == "live", "the stream connected", timeout=15)
    loaded = driver.execute_script("return performance.timeOrigin")

    # A service that did not exist when the page loaded.
    registry.register(make_instance("payments-1", service="payments", version="v2", host="10.0.0.21", port=9090,
                                    metadata={"zone": "eu-1", "canary": "true"}))
    _wait(driver, lambda d: _rows(d, "payments") == ["v2/payments-1"], "the new service shown")
    assert _summary(driver)["payments"] == "1"
    registry.register(make_instance("payments-2", service="payments", version="v2", host="10.0.0.22", port=9090,
                                    status=Status.DISABLED, metadata={"zone": "eu-2"}))
    _wait(driver, lambda d: _rows(d, "payments") == ["v2/payments-1", "v2/payments-2"], "the second join shown")
    # One more instance of a service on the page.
    registry.register(make_instance("orders-3", service="orders", version="v2", host="10.0.0.13", port=8080))
    _wait(driver, lambda d: "v2/orders-3" in _rows(d, "orders"), "the join shown")
    # A leave.
    registry.deregister(make_instance("orders-2", service="orders", host="10.0.0.12", port=8080))
    _wait(driver, lambda d: "v1/orders-2" not in _rows(d, "orders"), "the leave shown")
    _wait(driver, lambda d: _summary(d)["orders"] == "3", "the count updated")
    events = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'section.service[data-service=\"orders\"] .timeline li[data-event]'))"
        ".map(function (li) { return li.dataset.event; });")
    assert events == ["left", "joined", "joined", "joined", "joined"]  # the latest first: it saw orders come
    assert driver.execute_script("return performance.timeOrigin") == loaded  # never reloaded

    # Lease time left, read once the changes settle: a number of seconds; none for the ghost, flagged stale.
    cell = 'section.service[data-service="payments"] tr[data-instance="v2/payments-1"] td.ttl'
    _wait(driver, lambda d: re.fullmatch(r"\d+s", _text(d, cell)), "the lease ttl", timeout=10)
    ghost_row = 'section.service[data-service="orders"] tr[data-instance="v1/orders-0"]'
    assert _text(driver, ghost_row + " td.ttl") == "none"
    assert _text(driver, ghost_row + " td.stale") == "no lease: never expires"
    assert _text(driver, 'section.service[data-service="orders"] tr[data-instance="v1/orders-1"] td.stale') == ""
    assert _text(driver, 'section.service[data-service="payments"] tr[data-instance="v2/payments-2"] td.status') \
        == "disabled"
    # The picture once the highlight of the newest rows has faded.
    _wait(driver, lambda d: d.execute_script("return document.getAnimations().length === 0"), "still", timeout=10)
    shot = _artifact(tmp_path)
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_markup_in_metadata_is_shown_as_text_and_never_runs(
        driver: Any, dashboard_url: str, registry: Any) -> None:
    from selenium.webdriver.common.by import By

    registry.register(make_instance("h-1", service="hostile", port=9500, metadata={"note": HOSTILE}))
    driver.get(dashboard_url)
    selector = 'section.service[data-service="hostile"] tr[data-instance="v1/h-1"] td.metadata'
    _wait(driver, lambda d: _text(d, selector), "the first instance", timeout=15)
    # And one pushed after the page loaded.
    registry.register(make_instance("h-2", service="hostile", port=9501, metadata={"<b>key</b>": HOSTILE}))
    pushed = 'section.service[data-service="hostile"] tr[data-instance="v1/h-2"] td.metadata'
    _wait(driver, lambda d: _text(d, pushed), "the pushed instance")
    assert _text(driver, selector) == f"note={HOSTILE}"
    assert _text(driver, pushed) == f"<b>key</b>={HOSTILE}"
    assert driver.find_elements(By.CSS_SELECTOR, "main script, main img, main b") == []
    assert driver.execute_script("return window.pwned === undefined")
