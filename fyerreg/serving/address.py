"""Where a server binds and which address it advertises for others to dial: the one parser of host:port."""

from __future__ import annotations

import ipaddress
import socket
from typing import Optional, Tuple

_UNSPECIFIED = ("", "0.0.0.0", "::", "*")
# Connecting a UDP socket sends nothing; it only asks the kernel which source address it would use.
_PROBE_TARGETS = ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9)))


def split_host_port(address: str, *, field: str, default_port: Optional[int] = None) -> Tuple[str, int]:
    """Split ``host:port``, ``:port``, ``[v6]:port`` (or a bare host when ``default_port`` is given).

    Raises ValueError naming ``field`` when the address is malformed.
    """
    if not isinstance(address, str):
        raise TypeError(f"{field} must be a str, got {type(address).__name__}")
    text = address.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{field} {address!r} has an unterminated IPv6 bracket")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"{field} {address!r} is not [host]:port")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ValueError(f"{field} {address!r}: write an IPv6 host in brackets, as [::1]:8080")
    else:
        host, port_text = text, None
    if port_text is None or port_text == "":
        if default_port is None:
            raise ValueError(f"{field} {address!r} has no port")
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{field} {address!r} has no port in 0..65535")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_unspecified(host: str) -> bool:
    """True for hosts that mean "every interface" and cannot be dialled."""
    return host in _UNSPECIFIED


def family_for(host: str) -> socket.AddressFamily:
    """The address family to bind ``host`` with."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def outbound_ip(family: socket.AddressFamily = socket.AF_INET) -> str:
    """The address this host uses for outgoing traffic; loopback when it has no route."""
    for fam, target in _PROBE_TARGETS:
        if fam != family:
            continue
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as probe:
                probe.connect(target)
                ip = str(probe.getsockname()[0])
                if not ipaddress.ip_address(ip).is_unspecified:
                    return ip
        except OSError:
            pass
    try:
        ip = socket.gethostbyname(socket.gethostname())
        if not ipaddress.ip_address(ip).is_loopback:
            return ip
    except (OSError, ValueError):
        pass
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def advertise_address(bind_host: str, bound_port: int, advertise: Optional[str]) -> str:
    """The ``host:port`` others should dial for a server bound to ``bind_host:bound_port``.

    An explicit ``advertise`` wins (its port defaults to the bound port); otherwise an
    unspecified bind host (``0.0.0.0``, ``::``, empty) becomes the outbound IP.
    """
    if advertise:
        host, port = split_host_port(advertise, field="advertise_address", default_port=bound_port)
        if is_unspecified(host):
            raise ValueError(f"advertise_address {advertise!r} must be an address others can dial")
        return join_host_port(host, port or bound_port)
    if is_unspecified(bind_host):
        return join_host_port(outbound_ip(family_for(bind_host or "0.0.0.0")), bound_port)
    return join_host_port(bind_host, bound_port)
