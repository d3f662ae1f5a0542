"""One owner per registered instance: only ``_registration.py`` changes a registration's state, takes its
lock or starts its keepalive thread."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import fyerreg.registry.etcd

PACKAGE = Path(fyerreg.registry.etcd.__file__).resolve().parent
OWNER = "_registration.py"


def _foreign_writes(tree: ast.AST) -> List[str]:
    """``obj.attr = ...`` (or ``+=``) and ``with obj.lock`` / ``obj._lock`` on anything but ``self``."""
    found = []
    for node in ast.walk(tree):
        targets: List[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets
                       for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.With):
            targets = [item.context_expr for item in node.items
                       if isinstance(item.context_expr, ast.Attribute) and item.context_expr.attr in ("lock", "_lock")]
        for target in targets:
            if isinstance(target, ast.Attribute) and not (isinstance(target.value, ast.Name)
                                                          and target.value.id == "self"):
                found.append(f"line {target.lineno}: {ast.unparse(target)}")
    return found


def _uses_registrations(source: str) -> bool:
    return "Registration" in source and "import" in source and "Registration" in "".join(
        line for line in source.splitlines() if line.startswith("from ") or line.startswith("import "))


def test_no_module_handling_registrations_writes_their_state_or_takes_their_lock() -> None:
    offenders = {}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == OWNER or not _uses_registrations(path.read_text()):
            continue
        found = _foreign_writes(ast.parse(path.read_text(), filename=str(path)))
        if found:
            offenders[path.name] = found
    assert offenders == {}


def test_the_owner_exists_and_holds_the_keepalive_thread() -> None:
    source = (PACKAGE / OWNER).read_text()
    assert "class Registration" in source and "start_thread(" in source
    others = [p.name for p in PACKAGE.glob("*.py") if p.name != OWNER and 'thread(f"keepalive-' in p.read_text()]
    assert others == []
