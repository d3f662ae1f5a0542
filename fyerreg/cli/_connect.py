"""Opening the etcd registry the shared connection options describe."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, Dict, Optional

from ..errors import AuthenticationError, PermissionDeniedError, RegistryError, RegistryUnavailableError
from ._errors import EXIT_UNAVAILABLE, EXIT_USAGE, CommandError

__all__ = ["open_registry", "connection_options"]


def connection_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``EtcdRegistry`` keyword arguments for the shared options in ``args``."""
    options: Dict[str, Any] = {
        "endpoints": list(args.endpoints),
        "namespace": args.namespace,
        "dial_timeout": args.dial_timeout,
    }
    if args.user:
        password: Optional[str] = args.password
        if password is None and sys.stdin.isatty():
            password = getpass.getpass(f"password for etcd user {args.user}: ")
        options["username"] = args.user
        options["password"] = password or ""
    elif args.password:
        raise CommandError("--password needs --user (or $FYERREG_USERNAME)", EXIT_USAGE)
    if args.cert or args.key or args.cacert:
        if bool(args.cert) != bool(args.key):
            raise CommandError("--cert and --key go together", EXIT_USAGE)
        options["tls"] = {"ca": args.cacert, "cert": args.cert, "key": args.key}
    return options


def open_registry(args: argparse.Namespace, **extra: Any) -> Any:
    """An ``EtcdRegistry`` connected per ``args`` (errors propagate as fyerreg errors).

    A server that answers etcd's first read with another error (a gRPC server without
    etcd's services, an HTTP/2 server) is not etcd: exit status 3, like an unreachable one.
    """
    options = connection_options(args)
    from ..registry.etcd import EtcdRegistry
    from ..registry.layouts import layout_named

    try:
        return EtcdRegistry(**options, layout=layout_named(args.layout, args.namespace), **extra)
    except (AuthenticationError, PermissionDeniedError, RegistryUnavailableError):
        raise
    except RegistryError as exc:
        where = ", ".join(options["endpoints"])
        raise CommandError(f"etcd unreachable: {where} answered, but not as etcd ({exc})", EXIT_UNAVAILABLE) from None
    except (ValueError, TypeError) as exc:  # an invalid option: the message names it
        raise CommandError(str(exc), EXIT_USAGE) from None
