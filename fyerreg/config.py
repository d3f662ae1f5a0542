"""Configuration from the environment: the ``FYERREG_*`` variables, and :func:`connect`.

:func:`connect` is the registry factory every integration and the CLI use: an
:class:`~fyerreg.registry.etcd.EtcdRegistry` whose options come from the keyword
arguments given, then from the environment, then from the defaults. :data:`VARIABLES`
is the table of what each variable sets. A malformed value raises
:class:`~fyerreg.errors.ConfigurationError` naming the variable before anything
connects; a variable whose option was given as an argument is not read at all.

The advertise address (``FYERREG_ADVERTISE_ADDRESS``, then ``POD_IP``, then ``HOST_IP``)
is read by :class:`~fyerreg.serving.InstanceSpec`, through :func:`advertise_address_from_env`
and :func:`node_ip_from_env`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, Mapping, Optional, Tuple

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .registry.etcd import EtcdRegistry

__all__ = ["Variable", "VARIABLES", "connect", "registry_options", "read_environment",
           "advertise_address_from_env", "node_ip_from_env"]

Environ = Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable: ``name``, the ``option`` it sets (``tls.ca``: a key of
    ``tls``), its ``default`` as text, what it sets, and its deprecated ``aliases``."""

    name: str
    option: str
    default: str
    what: str
    aliases: Tuple[str, ...] = ()


ADVERTISE_ADDRESS = "FYERREG_ADVERTISE_ADDRESS"
NODE_IP_VARIABLES = ("POD_IP", "HOST_IP")
PASSWORD_FILE = "FYERREG_PASSWORD_FILE"

VARIABLES: Tuple[Variable, ...] = (
    Variable("FYERREG_ENDPOINTS", "endpoints", "127.0.0.1:2379",
             "etcd endpoints, `host:port` or `http(s)://host:port`, comma-separated"),
    Variable("FYERREG_NAMESPACE", "namespace", "fyerrpc", "key namespace: keys are `/NAMESPACE/services/...`"),
    Variable("FYERREG_LAYOUT", "layout", "fyer-rpc", "how records sit in etcd (`fyerreg.registry.layouts`)"),
    Variable("FYERREG_TTL", "ttl", "30", "lease TTL of registered instances, whole seconds"),
    Variable("FYERREG_DIAL_TIMEOUT", "dial_timeout", "5", "seconds to wait for etcd before giving up"),
    Variable("FYERREG_USERNAME", "username", "", "etcd user name", aliases=("FYERREG_USER",)),
    Variable("FYERREG_PASSWORD", "password", "", "etcd password"),
    Variable(PASSWORD_FILE, "password", "",
             "a file holding the etcd password (a trailing newline is dropped); instead of `FYERREG_PASSWORD`"),
    Variable("FYERREG_TLS_CA", "tls.ca", "", "CA certificate file: connect with TLS and verify the server",
             aliases=("FYERREG_CACERT",)),
    Variable("FYERREG_TLS_CERT", "tls.cert", "", "client certificate file (TLS client authentication)",
             aliases=("FYERREG_CERT",)),
    Variable("FYERREG_TLS_KEY", "tls.key", "", "client private key file (TLS client authentication)",
             aliases=("FYERREG_KEY",)),
)
"""Every variable :func:`read_environment` reads, in the order of the docs' table."""

_BY_NAME = {v.name: v for v in VARIABLES}


def _lookup(environ: Environ, name: str) -> Tuple[Optional[str], str]:
    """The value of ``name`` (or of its first alias that is set) and the name it was found under."""
    variable = _BY_NAME.get(name)
    for candidate in (name, *(variable.aliases if variable else ())):
        value = environ.get(candidate, "")
        if value.strip():
            # A password is taken as it is: spaces may be part of it.
            return (value if name == "FYERREG_PASSWORD" else value.strip()), candidate
    return None, name


def _bad(name: str, value: str, expected: str) -> ConfigurationError:
    return ConfigurationError(f"{name}={value!r}: expected {expected}", variable=name)


def _endpoints(name: str, value: str) -> Any:
    from .registry.etcd.options import Endpoint

    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise _bad(name, value, "one or more host:port, comma-separated")
    for part in parts:
        try:
            Endpoint.parse(part)
        except ValueError as exc:  # the parser never echoes an endpoint carrying credentials
            raise ConfigurationError(f"{name}: {exc}", variable=name) from None
    return parts


def _namespace(name: str, value: str) -> Any:
    from .errors import InvalidInstanceError
    from .naming import _check_segment

    try:
        _check_segment("namespace", value)
    except InvalidInstanceError as exc:
        raise ConfigurationError(f"{name}={value!r}: {exc}", variable=name) from None
    return value


def _layout(name: str, value: str) -> Any:
    from .registry.layouts import LAYOUTS

    if value not in LAYOUTS:
        raise _bad(name, value, "one of " + ", ".join(sorted(LAYOUTS)))
    return value


def _ttl(name: str, value: str) -> Any:
    from .registry.base import MAX_TTL
    from .registry.etcd.options import MIN_TTL

    if not (value.isascii() and value.isdigit()) or not MIN_TTL <= int(value) <= MAX_TTL:
        raise _bad(name, value, f"a whole number of seconds from {MIN_TTL} to {MAX_TTL}")
    return int(value)


def _seconds(name: str, value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise _bad(name, value, "a number of seconds > 0")
    return number


def _text(name: str, value: str) -> Any:
    return value


def _password(name: str, value: str) -> Any:
    return value  # never echoed


def _password_file(name: str, path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigurationError(f"{name}={path!r}: cannot read the password file ({reason})",
                                 variable=name) from None
    password = text[:-1] if text.endswith("\n") else text
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise ConfigurationError(f"{name}={path!r}: the password file is empty", variable=name)
    return password


def _readable_file(name: str, path: str) -> Any:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise _bad(name, path, "a readable file")
    return path


_PARSERS: Dict[str, Callable[[str, str], Any]] = {
    "FYERREG_ENDPOINTS": _endpoints, "FYERREG_NAMESPACE": _namespace, "FYERREG_LAYOUT": _layout,
    "FYERREG_TTL": _ttl, "FYERREG_DIAL_TIMEOUT": _seconds, "FYERREG_USERNAME": _text,
    "FYERREG_PASSWORD": _password, PASSWORD_FILE: _password_file, "FYERREG_TLS_CA": _readable_file,
    "FYERREG_TLS_CERT": _readable_file, "FYERREG_TLS_KEY": _readable_file,
}


def read_environment(environ: Optional[Environ] = None, *, skip: Collection[str] = ()) -> Dict[str, Any]:
    """The options the variables of ``environ`` (default ``os.environ``) set, parsed: ``{option: value}``.

    Keys are the ``option`` of :data:`VARIABLES` (``"tls.ca"`` for a key of ``tls``); an
    unset or blank variable sets nothing. Options in ``skip`` (``"tls"`` skips its three
    keys) are not read: an argument given for them wins. Raises ConfigurationError naming
    the variable when a value is malformed, a password file cannot be read, both
    ``FYERREG_PASSWORD`` and ``FYERREG_PASSWORD_FILE`` are set, or only one of
    ``FYERREG_TLS_CERT`` and ``FYERREG_TLS_KEY`` is.
    """
    env: Environ = os.environ if environ is None else environ
    skipped = set(skip)
    out: Dict[str, Any] = {}
    if env.get("FYERREG_PASSWORD", "").strip() and env.get(PASSWORD_FILE, "").strip() \
            and "password" not in skipped:
        raise ConfigurationError(f"FYERREG_PASSWORD and {PASSWORD_FILE} are both set; set one of them",
                                 variable=PASSWORD_FILE)
    for variable in VARIABLES:
        if variable.option in skipped or variable.option.partition(".")[0] in skipped:
            continue
        value, found_as = _lookup(env, variable.name)
        if value is None:
            continue
        out[variable.option] = _PARSERS[variable.name](found_as, value)
    if ("tls.cert" in out) != ("tls.key" in out):
        given = "FYERREG_TLS_CERT" if "tls.cert" in out else "FYERREG_TLS_KEY"
        raise ConfigurationError("FYERREG_TLS_CERT and FYERREG_TLS_KEY go together: "
                                 f"only {given} is set", variable=given)
    return out


def registry_options(environ: Optional[Environ] = None, **overrides: Any) -> Dict[str, Any]:
    """The ``EtcdRegistry`` keyword arguments: ``overrides``, then the environment for the rest.

    ``tls`` given as an argument replaces all three ``FYERREG_TLS_*`` variables, and
    ``options`` (an ``EtcdOptions``) every variable; the other options are taken one by
    one. Nothing connects; see :func:`read_environment` for the errors, and a user name
    without a password (or a password without a user name) from the environment is one.
    """
    if "options" in overrides:  # a whole EtcdOptions given: nothing is left to the environment
        return dict(overrides)
    found = read_environment(environ, skip=overrides)
    if "username" in found and "password" not in found and "password" not in overrides:
        raise ConfigurationError(f"FYERREG_USERNAME is set but neither FYERREG_PASSWORD nor {PASSWORD_FILE}",
                                 variable="FYERREG_USERNAME")
    if "password" in found and "username" not in found and "username" not in overrides:
        source = PASSWORD_FILE if (os.environ if environ is None else environ).get(PASSWORD_FILE, "").strip() \
            else "FYERREG_PASSWORD"
        raise ConfigurationError(f"{source} is set but not FYERREG_USERNAME", variable=source)
    options: Dict[str, Any] = {}
    tls = {key.partition(".")[2]: found.pop(key) for key in list(found) if key.startswith("tls.")}
    if tls:
        options["tls"] = tls
    options.update(found)
    options.update(overrides)
    return options


def connect(**overrides: Any) -> EtcdRegistry:
    """An :class:`~fyerreg.registry.etcd.EtcdRegistry` configured by ``overrides``, then by the environment.

    Keyword arguments are those of ``EtcdRegistry`` (``endpoints``, ``namespace``,
    ``ttl``, ``username``/``password``, ``tls``, ``layout``, ``dial_timeout``, ...); each
    one given wins over its ``FYERREG_*`` variable (see :data:`VARIABLES`). Raises
    ConfigurationError naming the variable when one is malformed, before connecting;
    then whatever ``EtcdRegistry`` raises (it connects).
    """
    from .registry.etcd import EtcdRegistry

    return EtcdRegistry(**registry_options(os.environ, **overrides))


def advertise_address_from_env(environ: Optional[Environ] = None) -> Optional[str]:
    """``FYERREG_ADVERTISE_ADDRESS`` (``host`` or ``host:port``), or None when unset.

    Raises ConfigurationError when it is malformed or a host no one can dial (``0.0.0.0``).
    """
    from .serving.address import is_unspecified, split_host_port

    env: Environ = os.environ if environ is None else environ
    value = env.get(ADVERTISE_ADDRESS, "").strip()
    if not value:
        return None
    try:
        host, _ = split_host_port(value, field=ADVERTISE_ADDRESS, default_port=0)
    except ValueError as exc:
        raise ConfigurationError(str(exc), variable=ADVERTISE_ADDRESS) from None
    if not host or is_unspecified(host):
        raise _bad(ADVERTISE_ADDRESS, value, "a host others can dial (host or host:port), not every interface")
    return value


def node_ip_from_env(environ: Optional[Environ] = None) -> Optional[str]:
    """The IP in ``POD_IP``, else in ``HOST_IP`` (Kubernetes' downward API), or None when neither is set.

    It is returned as the host of an address: an IPv6 address in brackets (``[fd00::7]``).

    Raises ConfigurationError naming the variable when its value is not an IP address.
    """
    env: Environ = os.environ if environ is None else environ
    for name in NODE_IP_VARIABLES:
        value = env.get(name, "").strip()
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise _bad(name, value, "an IP address") from None
        if ip.is_unspecified:
            raise _bad(name, value, "an IP address others can dial")
        return f"[{ip}]" if ip.version == 6 else str(ip)
    return None
