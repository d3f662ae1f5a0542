"""The fyerreg command without etcd: options, environment variables, usage errors (exit 2)."""

from __future__ import annotations

import argparse
import importlib.metadata
import socket
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from fyerreg import logging as fyerreg_logging
from fyerreg.cli import _COMMANDS, main
from fyerreg.cli._connect import connection_options
from fyerreg.cli._errors import CommandError
from fyerreg.cli._parser import apply_environment, build_parser
from fyerreg.cli._sidecar import advertised_address, parse_metadata
from fyerreg.cli._watch import diff
from fyerreg.naming import Instance, Status
from fyerreg.serving.address import is_unspecified, outbound_ip, split_host_port


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    fyerreg_logging.reset()


def _parse(argv: List[str], environ: Optional[Dict[str, str]] = None) -> argparse.Namespace:
    args = build_parser(_COMMANDS).parse_args(argv)
    apply_environment(args, environ or {})
    return args


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_defaults_without_environment() -> None:
    args = _parse(["list", "orders"])
    assert args.endpoints == ["127.0.0.1:2379"]
    assert args.namespace == "fyerrpc"
    assert args.dial_timeout == 5.0
    assert args.user is None and args.password is None
    assert args.log_format == "text"
    assert args.layout == "fyer-rpc"


def _pem_files(tmp_path: Path) -> Dict[str, str]:
    paths = {}
    for name in ("ca", "c", "k"):
        (tmp_path / f"{name}.pem").write_text("not checked before connecting\n")
        paths[name] = str(tmp_path / f"{name}.pem")
    return paths


@pytest.mark.parametrize("names", [
    ("FYERREG_USERNAME", "FYERREG_TLS_CA", "FYERREG_TLS_CERT", "FYERREG_TLS_KEY"),
    ("FYERREG_USER", "FYERREG_CACERT", "FYERREG_CERT", "FYERREG_KEY"),  # the deprecated names, still read
], ids=["names", "deprecated-names"])
def test_environment_variables_fill_every_connection_option(names: Tuple[str, ...], tmp_path: Path) -> None:
    pem = _pem_files(tmp_path)
    user, ca, cert, key = names
    env = {
        "FYERREG_ENDPOINTS": "10.0.0.1:2379,10.0.0.2:2379",
        "FYERREG_NAMESPACE": "prod",
        user: "ops",
        "FYERREG_PASSWORD": "s3cret",
        ca: pem["ca"],
        cert: pem["c"],
        key: pem["k"],
        "FYERREG_DIAL_TIMEOUT": "1.5",
        "FYERREG_LOG_FORMAT": "json",
        "FYERREG_LOG_LEVEL": "DEBUG",
        "FYERREG_LAYOUT": "fyer-rpc",
    }
    args = _parse(["services"], env)
    assert args.layout == "fyer-rpc"
    assert args.endpoints == ["10.0.0.1:2379", "10.0.0.2:2379"]
    assert args.log_format == "json" and args.log_level == "debug"
    assert connection_options(args) == {
        "endpoints": ["10.0.0.1:2379", "10.0.0.2:2379"],
        "namespace": "prod",
        "dial_timeout": 1.5,
        "username": "ops",
        "password": "s3cret",
        "tls": {"ca": pem["ca"], "cert": pem["c"], "key": pem["k"]},
    }


def test_the_new_variable_names_win_over_the_deprecated_ones(tmp_path: Path) -> None:
    pem = _pem_files(tmp_path)
    args = _parse(["services"], {"FYERREG_USERNAME": "new", "FYERREG_USER": "old", "FYERREG_TLS_CA": pem["ca"],
                                 "FYERREG_CACERT": "/nonexistent.pem"})
    assert args.user == "new" and args.cacert == pem["ca"]


def test_a_password_file_and_the_register_ttl_come_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("file s3cret\n")
    args = _parse(["register", "--service", "s", "--version", "v", "--address", "h:1"],
                  {"FYERREG_USERNAME": "ops", "FYERREG_PASSWORD_FILE": str(secret), "FYERREG_TTL": "12"})
    assert connection_options(args)["password"] == "file s3cret"
    assert args.ttl == 12
    explicit = _parse(["register", "--service", "s", "--version", "v", "--address", "h:1", "--ttl", "7"],
                      {"FYERREG_TTL": "not even a number"})  # the option given: the variable is not read
    assert explicit.ttl == 7


def test_command_line_wins_over_environment_before_or_after_the_command() -> None:
    env = {"FYERREG_NAMESPACE": "env-ns", "FYERREG_ENDPOINTS": "env:1"}
    before = _parse(["--namespace", "cli-ns", "list", "orders"], env)
    after = _parse(["list", "orders", "--namespace", "cli-ns", "--endpoints", "a:1", "--endpoints", "b:2,c:3"], env)
    assert before.namespace == after.namespace == "cli-ns"
    assert before.endpoints == ["env:1"]
    assert after.endpoints == ["a:1", "b:2", "c:3"]


@pytest.mark.parametrize(
    ("argv", "environ", "needle"),
    [
        (["frobnicate"], {}, "invalid choice"),
        (["list"], {}, "service"),
        (["register", "--service", "s"], {}, "--version"),
        (["list", "s", "--log-format", "xml"], {}, "xml"),
        (["list", "s", "--dial-timeout", "-1"], {}, "--dial-timeout"),
        (["list", "s"], {"FYERREG_DIAL_TIMEOUT": "soon"}, "FYERREG_DIAL_TIMEOUT='soon'"),
        (["list", "s"], {"FYERREG_TLS_CA": "/nonexistent/ca.pem"}, "FYERREG_TLS_CA='/nonexistent/ca.pem'"),
        (["list", "s"], {"FYERREG_PASSWORD_FILE": "/nonexistent/pw"}, "FYERREG_PASSWORD_FILE='/nonexistent/pw'"),
        (["register", "--service", "s", "--version", "v", "--address", "h:1"], {"FYERREG_TTL": "abc"},
         "FYERREG_TTL='abc'"),
        (["list", "s"], {"FYERREG_LOG_LEVEL": "loud"}, "FYERREG_LOG_LEVEL"),
        (["--layout", "consul", "services"], {}, "consul"),
        (["services"], {"FYERREG_LAYOUT": "consul"}, "FYERREG_LAYOUT"),
        (["list", "s", "--endpoints", ","], {}, "endpoint"),
        (["list", "s", "--password", "p"], {}, "--user"),
        (["list", "s", "--cert", "c.pem"], {}, "--key"),
        (["register", "--service", "s", "--version", "v", "--address", "nohost"], {}, "address"),
        (["register", "--service", "s", "--version", "v", "--address", "h:1", "--meta", "novalue"], {}, "KEY=VALUE"),
        (["register", "--service", "s", "--version", "v", "--address", "h:1", "--weight", "-3"], {}, "weight"),
        (["etcd", "--port", "70000"], {}, "port"),
        (["register", "--service", "s", "--version", "v", "--address", "h:1", "--ttl", "1"], {}, "ttl"),
        (["list", "s"], {"FYERREG_ENDPOINTS": "ftp://h:1"}, "ftp"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: List[str], environ: Dict[str, str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, environ) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fyerreg")
    assert needle in line


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], {}) == 0
    out = capsys.readouterr().out
    for command in ("services", "list", "watch", "register", "deregister", "etcd", "doctor"):
        assert command in out
    assert "FYERREG_PASSWORD" in out


def test_parse_metadata_accepts_repeated_and_grouped_entries() -> None:
    assert parse_metadata([["zone=a", "tier=web"], ["url=http://x/?a=b"]]) == {
        "zone": "a", "tier": "web", "url": "http://x/?a=b"}
    with pytest.raises(CommandError):
        parse_metadata([["=v"]])


def test_diff_reports_joined_left_and_changed_fields_but_not_updated_at() -> None:
    a = Instance.new("s", "v1", "h:1", id="a")
    b = Instance.new("s", "v1", "h:2", id="b")
    c = Instance.new("s", "v1", "h:3", id="c")
    before = {("v1", "a"): a, ("v1", "b"): b}
    after = {
        ("v1", "a"): a.replace(status=Status.DISABLED, weight=5, updated_at=99),
        ("v1", "c"): c,
    }
    events = diff(before, after)
    assert [(e, i.id) for e, i, _ in events] == [("changed", "a"), ("left", "b"), ("joined", "c")]
    assert events[0][2] == {"status": (Status.ENABLED, Status.DISABLED), "weight": (100, 5)}
    assert diff(after, {("v1", "a"): after[("v1", "a")].replace(updated_at=100), ("v1", "c"): c}) == []


def test_docs_of_the_command_show_every_command_and_variable() -> None:
    from fyerreg.cli._parser import ENV_DEFAULTS

    docs = Path(__file__).resolve().parents[2] / "docs"
    pages = [docs / "guides" / "cli.md", docs / "guides" / "dashboard.md", *sorted((docs / "operations").glob("*.md"))]
    section = "".join(page.read_text() for page in pages)  # what was the README's "Operating fyerreg"
    for command in ("etcd", "register", "services", "list", "watch", "deregister", "doctor"):
        assert f"$ fyerreg {command}" in section, command
    for env, _, _ in ENV_DEFAULTS.values():
        assert f"`{env}`" in section, env
    help_text = build_parser(_COMMANDS).format_help()
    for flag in ("--endpoints", "--namespace", "--user", "--password", "--cacert", "--cert", "--key",
                 "--dial-timeout", "--log-format", "--log-level"):
        assert flag in help_text and f"`{flag}" in section, flag


def test_docs_have_one_table_of_every_configuration_variable() -> None:
    from fyerreg.config import NODE_IP_VARIABLES, VARIABLES

    docs = Path(__file__).resolve().parents[2] / "docs"
    section = (docs / "operations" / "configuration.md").read_text()
    pages = [page.read_text() for page in docs.rglob("*.md")] + [(docs.parent / "README.md").read_text()]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for variable in VARIABLES:
        assert any(f"`{variable.name}`" in row.split("|")[1] for row in rows), variable.name
        for alias in variable.aliases:
            assert f"`{alias}`" in section, alias
    for name in (*NODE_IP_VARIABLES, "FYERREG_ADVERTISE_ADDRESS", "FYERREG_LOG_FORMAT", "FYERREG_LOG_LEVEL"):
        assert any(f"`{name}`" in row.split("|")[1] for row in rows), name
    assert sum(page.count("| Variable |") for page in pages) == 1  # one table of variables in all the docs


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"], {}) == 0
    assert capsys.readouterr().out.strip() == f"fyerreg {importlib.metadata.version('fyerreg')}"
    # The subcommands' own --version (a service version) is untouched.
    assert _parse(["list", "orders", "--version", "v1"]).version == "v1"


@pytest.mark.parametrize(("command", "required"), [
    ("register", ("--service", "--version", "--address")),
    ("deregister", ("--service", "--version", "--id")),
])
def test_help_of_register_and_deregister_explains_each_required_option(
    command: str, required: Tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"], {}) == 0
    out = capsys.readouterr().out
    assert "are required" in out
    options = out.split("\n\n", 1)[1]  # past the usage, which each Python version wraps its own way
    for option in required:
        [line] = [line for line in options.splitlines() if line.lstrip().startswith(f"{option} ")]
        words = line.split()
        assert len(words) > 2, f"{option} has no help text: {line!r}"  # option, metavar, then its help


@pytest.mark.parametrize("address", ["0.0.0.0:8080", ":8080", "[::]:8080"])
def test_register_replaces_an_unspecified_host_by_the_outbound_address(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    advertised = advertised_address(address)
    host, port = split_host_port(advertised, field="advertised")
    assert port == 8080
    assert not is_unspecified(host)
    assert host == outbound_ip(socket.AF_INET6 if "::" in address else socket.AF_INET)
    assert f"advertising {advertised}" in capsys.readouterr().err


def test_register_keeps_a_dialable_address_as_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert advertised_address("10.0.0.1:8080") == "10.0.0.1:8080"
    assert advertised_address("[::1]:8080") == "[::1]:8080"
    assert advertised_address("api.internal:80") == "api.internal:80"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("address", ["nonsense", "h:99999", "::1:80"])
def test_register_refuses_a_malformed_address_with_exit_2(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["register", "--service", "s", "--version", "v", "--address", address]
    assert main(argv, {"FYERREG_ENDPOINTS": "127.0.0.1:1"}) == 2
    assert "--address" in _one_line_error(capsys)

