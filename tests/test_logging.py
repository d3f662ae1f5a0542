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


HOSTILE = "x\n2024-05-01 12:00:00,000 ERROR fyerreg: forged\r\x1b[31m\u2028\u202e\x00"
ESCAPED = "x\\n2024-05-01 12:00:00,000 ERROR fyerreg: forged\\r\\x1b[31m\\u2028\\u202e\\x00"


def test_text_format_escapes_control_characters_in_the_message_and_every_field() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=False, stream=out)
    logging.getLogger("fyerreg.registry.etcd").warning(
        "skipping %s: %s", HOSTILE, HOSTILE, extra={"key": HOSTILE, "service": "s\tt", "error": "two words"})
    [line] = out.getvalue().splitlines()
    assert f"skipping {ESCAPED}: {ESCAPED} " in line
    assert 'service="s\\tt"' in line  # escaped, and quoted: it holds whitespace once rendered
    assert f'key="{ESCAPED}"' in line  # quoted: a space in a value cannot start a fake field
    assert 'error="two words"' in line


def test_a_quote_or_equals_sign_in_a_field_cannot_fake_another_field() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=False, stream=out)
    logging.getLogger("fyerreg.x").warning("m", extra={"endpoint": 'h" service="admin', "zone": "a=b"})
    line = out.getvalue().strip()
    assert line.endswith('m endpoint="h\\" service=\\"admin" zone="a=b"')


def test_text_traceback_lines_are_indented_and_escaped_below_the_record() -> None:
    out = io.StringIO()
    fyerreg_logging.configure(json=False, stream=out)
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        logging.getLogger("fyerreg.x").exception("watch broken", extra={"service": "s"})
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("ERROR fyerreg.x: watch broken service=s")
    assert rest and all(line.startswith("  ") for line in rest)  # no line below can pass for a record
    assert rest[0] == "  Traceback (most recent call last):"
    assert rest[-2:] == ["  RuntimeError: x", "  " + ESCAPED.split("\\n", 1)[1]]


def test_escape_control_leaves_printable_text_alone() -> None:
    text = "Zürich /fyerrpc/services/a b\\c 東京 ✓"
    assert fyerreg_logging.escape_control(text) == text
    assert fyerreg_logging.escape_control("\x7f\x85\t") == "\\x7f\\x85\\t"


def test_a_record_about_an_instance_names_its_host_port_address() -> None:
    from fyerreg import Instance, MemoryRegistry, Server, ServerOptions

    out = io.StringIO()
    fyerreg_logging.configure(json=True, level="INFO", stream=out)
    with MemoryRegistry(ttl=10) as registry:
        registry.register(Instance.new("orders", "v1", "10.0.0.7:8080", id="o-1"))
        server = Server(ServerOptions(address="127.0.0.1:0", registry=registry, enable_registry=True,
                                      service_name="billing", drain_delay=0))
        server.start()
        bound = server.address
        server.stop()
    lines = _lines(out)
    registered = [line for line in lines if line.get("instance_id") == "o-1"]
    assert registered and all(line["address"] == "10.0.0.7:8080" for line in registered)
    about_server = [line for line in lines if line.get("service") == "billing"]
    assert about_server and all(line["address"] == bound for line in about_server)
    assert not [line for line in lines if "endpoint" in line]
