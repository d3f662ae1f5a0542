"""JSON bodies of calls: dicts and dataclasses in, dicts and dataclasses out."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, Optional, Type, TypeVar

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """``value`` with every dataclass turned into a dict, ready for ``json.dumps``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    """Serialize a call's request or response body (raises TypeError when not JSON-able)."""
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(body: bytes) -> Any:
    """Parse a body; an empty body is ``None``. Raises ValueError when it is not UTF-8 JSON."""
    if not body:
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def from_jsonable(data: Any, target: Optional[Type[T]]) -> Any:
    """Build ``target`` (a dataclass, nested dataclasses included) from decoded JSON.

    With no target, or a target that is not a dataclass, ``data`` is returned as is.
    Raises ValueError naming the field when ``data`` does not fit.
    """
    if target is None or not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object for {target.__name__}, got {type(data).__name__}")
    hints = _hints(target)
    names = {f.name for f in dataclasses.fields(target) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{target.__name__} has no field {unknown[0]!r}")
    kwargs: Dict[str, Any] = {}
    for name, value in data.items():
        hint = hints.get(name)
        kwargs[name] = from_jsonable(value, hint if isinstance(hint, type) else None)
    try:
        return target(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{target.__name__}: {exc}") from None


def _hints(target: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: treat fields as plain JSON
        return {}
