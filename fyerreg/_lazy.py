"""Lazy public names of a package (PEP 562): a name's module is imported when the name is first read."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Callable, List, Mapping, Tuple

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in submodules.

    ``exports`` maps each name to the relative module defining it (``{"Client": ".api"}``);
    a name mapped to its own module (``{"logging": ".logging"}``) is that module, and so
    is any other public submodule (``package.errors``), as if the package had imported
    it. A name read once is kept on the package, so later reads do not come back here.
    """

    def __getattr__(name: str) -> object:
        source = exports.get(name)
        if source is None:
            if name.startswith("_") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            source = f".{name}"
        module = importlib.import_module(source, package)
        value: object = module if source == f".{name}" else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
