"""fyerreg.logging: JSON and text log lines for the "fyerreg" logger only."""

from __future__ import annotations

import io
import json
import logging
from typing import Iterator

import pytest

from fyerreg import logging as fyerreg_logging


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    root_handlers = list(logging.getLogger().handlers)
    yield
    fyerreg_logging.reset()
    assert logging.getLogger().handlers == root_handlers


def _lines(stream: io.StringIO) -> list:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_and_carry_the_structured_extras() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=True, level="INFO", stream=out)
    extra = {"service": "orders", "version": "v1", "instance_id": "i-1", "lease_id": 7587, "endpoint": "127.0.0.1:2379",
             "attempt": 3}
    logging.getLogger("fyerreg.registry.etcd").warning("lease lost; registered again", extra=extra)

    [line] = _lines(out)
    assert line["message"] == "lease lost; registered again"
    assert line["level"] == "WARNING"
    assert line["logger"] == "fyerreg.registry.etcd"
    assert "timestamp" in line
    for key, value in extra.items():
        assert line[key] == value


def test_json_exception_is_one_parseable_line() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("fyerreg.x").exception("watch broken", extra={"service": "s"})
    [line] = _lines(out)
    assert "RuntimeError: boom" in line["exc_info"]
    assert line["service"] == "s"


def test_password_extra_is_redacted_in_both_formats() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=True, stream=out)
    logging.getLogger("fyerreg.x").warning("auth", extra={"password": "hunter2"})
    fyerreg_logging.configure(json=False, stream=out)
    logging.getLogger("fyerreg.x").warning("auth", extra={"password": "hunter2"})
    assert "hunter2" not in out.getvalue()
    assert out.getvalue().count("***") == 2


def test_text_format_appends_fields_in_a_stable_order() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=False, level=logging.DEBUG, stream=out)
    logging.getLogger("fyerreg.registry").debug("registered", extra={"lease_id": 5, "zone": "a", "service": "orders"})
    line = out.getvalue().strip()
    assert line.endswith("DEBUG fyerreg.registry: registered service=orders lease_id=5 zone=a")


def test_only_the_fyerreg_logger_is_touched_and_configure_is_idempotent() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(stream=out)
    fyerreg_logging.configure(stream=out)
    logger = logging.getLogger("fyerreg")
    assert len(logger.handlers) == 1
    assert logger.propagate is False
    logging.getLogger("fyerreg.x").info("once")
    logging.getLogger("other").warning("not ours")
    assert [line["message"] for line in _lines(out)] == ["once"]


def test_level_filters_and_reset_restores() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(level="warning", stream=out)
    logging.getLogger("fyerreg.x").info("hidden")
    assert out.getvalue() == ""
    fyerreg_logging.reset()
    logger = logging.getLogger("fyerreg")
    assert logger.handlers == [] and logger.propagate and logger.level == logging.NOTSET


def test_unknown_level_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="loud"):
        fyerreg_logging.configure(level="loud")
