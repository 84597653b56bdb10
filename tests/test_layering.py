"""Imports go one way: the domain core never imports a shell (CLI, API)."""

from __future__ import annotations

import ast
from pathlib import Path

import hashwatch

PACKAGE = Path(hashwatch.__file__).parent
SHELLS = ("hashwatch.cli", "hashwatch.api")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_modules_never_import_the_shells() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = "hashwatch." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if module.startswith(SHELLS):
            continue
        for name in imported_modules(path):
            if name.startswith(SHELLS):
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_signal_types_use_no_framework() -> None:
    for path in (PACKAGE / "signals").glob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith(("sqlalchemy", "fastapi", "typer", "rich")), (path, name)
