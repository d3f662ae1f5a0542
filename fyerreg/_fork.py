"""Objects that renew their locks, threads and connections in a forked child.

A child process inherits a copy of every object but none of the threads that served
them, and locks those threads may have held stay locked forever. gRPC channels are not
fork-safe either. In each child, before any other code of the child runs:

- every lock (``Lock``, ``RLock``, ``Condition``, ``Event``) reachable from an object
  registered with :func:`track`, or held in a global of a fyerreg module, is reset to
  unheld, in place (so every reference to it sees the reset, wherever it is kept);
- then each tracked object's ``_after_fork()``, if it has one, drops what belongs to the
  parent (threads, connections, leases) and prepares to start over lazily, on first use.

"Reachable" follows the attributes of fyerreg objects (instances of classes defined in
fyerreg, or subclasses of them), the items of dicts, lists, tuples, sets and deques, and
bound methods and closures of fyerreg code; it never enters other objects (a user's
filter, a gRPC channel, a thread), so a lock added to a fyerreg object later is covered
without anyone listing it. (A lock the forking thread itself holds is reset too: fyerreg
never forks, and code that forks does so outside fyerreg's calls.)
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import types
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

logger = logging.getLogger("fyerreg.fork")

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()

_LOCK_TYPES: Dict[type, Callable[[], Any]] = {type(threading.Lock()): threading.Lock,
                                             type(threading.RLock()): threading.RLock}
# Each can reset itself to unheld in place (the method CPython's threading and logging use after a fork).
_SYNC_TYPES = (*_LOCK_TYPES, threading.Condition, threading.Event)
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), type, types.ModuleType, threading.Thread)
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
_PACKAGE = __name__.split(".")[0]


def fresh_lock_like(value: Any) -> Optional[Any]:
    """A new, unheld lock of the same kind when ``value`` is a Lock or RLock, else None."""
    factory = _LOCK_TYPES.get(type(value))
    return factory() if factory is not None else None


def track(obj: Any) -> None:
    """Renew the locks reachable from ``obj`` and call ``obj._after_fork()`` (if defined) in
    every child forked while ``obj`` is alive."""
    _tracked.add(obj)


_LEAF, _SYNC, _MAPPING, _ITERABLE, _METHOD, _FUNCTION, _OURS = range(7)
_kinds: Dict[type, int] = {}
_slots: Dict[type, Tuple[str, ...]] = {}


def _kind(cls: type) -> int:
    kind = _kinds.get(cls)
    if kind is None:
        if issubclass(cls, _LEAVES):
            kind = _LEAF
        elif issubclass(cls, _SYNC_TYPES):
            kind = _SYNC
        elif issubclass(cls, dict):
            kind = _MAPPING
        elif issubclass(cls, _CONTAINERS):
            kind = _ITERABLE
        elif issubclass(cls, types.MethodType):
            kind = _METHOD
        elif issubclass(cls, types.FunctionType):
            kind = _FUNCTION
        elif any(_module_of(base).partition(".")[0] == _PACKAGE for base in cls.__mro__):
            kind = _OURS
            names: List[str] = []
            for base in cls.__mro__:
                declared = base.__dict__.get("__slots__", ())
                names.extend(n for n in ((declared,) if isinstance(declared, str) else declared)
                             if n not in ("__dict__", "__weakref__"))
            _slots[cls] = tuple(names)
        else:
            kind = _LEAF  # someone else's object: never entered
        _kinds[cls] = kind
    return kind


def _module_of(cls: type) -> str:
    # Not always a str: on Python 3.9 some classes' __module__ is a slot descriptor.
    module = getattr(cls, "__module__", "")
    return module if isinstance(module, str) else ""


def _referents(obj: Any, kind: int) -> Iterable[Any]:
    if kind == _MAPPING:
        return [*obj.keys(), *obj.values()]
    if kind == _ITERABLE:
        return list(obj)
    if kind == _METHOD:
        return (obj.__self__,)
    if kind == _FUNCTION:
        if not (getattr(obj, "__module__", None) or "").startswith(_PACKAGE + "."):
            return ()
        out: List[Any] = []
        for cell in obj.__closure__ or ():
            try:
                out.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        return out
    values = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    for name in _slots[type(obj)]:
        try:
            values.append(getattr(obj, name))
        except AttributeError:  # a slot never set
            pass
    return values


def reachable_locks(roots: Iterable[Any]) -> List[Any]:
    """Every Lock, RLock, Condition and Event reachable from ``roots`` (see the module doc)."""
    found: List[Any] = []
    seen: Set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        kind = _kinds.get(type(obj))
        if kind is None:
            kind = _kind(type(obj))
        if kind == _LEAF or id(obj) in seen:
            continue
        seen.add(id(obj))
        if kind == _SYNC:
            found.append(obj)
        else:
            stack.extend(_referents(obj, kind))
    return found


def _module_globals() -> List[Any]:
    return [vars(module) for name, module in list(sys.modules.items())
            if module is not None and (name == _PACKAGE or name.startswith(_PACKAGE + "."))]


def renew_locks(*roots: Any) -> None:
    """Reset every lock reachable from ``roots`` to unheld, in place (in a forked child,
    where a lock held by a parent's thread at the fork would stay held forever)."""
    for lock in reachable_locks(roots):
        lock._at_fork_reinit()


def _after_fork_in_child() -> None:
    objs = list(_tracked)
    try:
        renew_locks(*objs, *_module_globals())
    except Exception:  # never break the fork; the hooks below still run
        logger.exception("renewing locks after fork failed")
    for obj in objs:
        hook = getattr(obj, "_after_fork", None)
        if hook is None:
            continue
        try:
            hook()
        except Exception:  # a failing object must not break the others, nor the fork
            logger.exception("resetting %r after fork failed", obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
