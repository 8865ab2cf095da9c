"""Imports point one way (DESIGN.md, Layout): cli -> report -> eval -> apps, train (siblings)
-> metrics -> models -> data -> language, with `world` imported only by eval and cli. A
back-edge means a concept sits in the wrong module."""

from __future__ import annotations

import ast
from pathlib import Path

import finevl

ROOT = Path(finevl.__file__).parent
# For each top-level part: the finevl parts it must never import.
FORBIDDEN = {
    "language": {"data", "world", "models", "metrics", "train", "apps", "eval", "report", "cli"},
    "data": {"world", "models", "metrics", "train", "apps", "eval", "report", "cli"},
    "world": {"models", "metrics", "train", "apps", "eval", "report", "cli"},
    "models": {"world", "metrics", "train", "apps", "eval", "report", "cli"},
    "metrics": {"world", "train", "apps", "eval", "report", "cli"},
    "train": {"world", "apps", "eval", "report", "cli"},
    "apps": {"world", "train", "eval", "report", "cli"},
    "eval": {"report", "cli"},
    "report": {"cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("finevl."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("finevl.")}
    return names


def test_imports_point_one_way():
    offenders = []
    for path in ROOT.rglob("*.py"):
        part = path.relative_to(ROOT).parts[0].removesuffix(".py")
        bad = _imports(path) & FORBIDDEN.get(part, set())
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_the_world_is_imported_only_by_eval_and_the_cli():
    readers = {
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if "world" in _imports(path) and path.relative_to(ROOT).parts[0] not in ("world", "eval", "cli.py")
    }
    assert readers == set()


def test_cli_import_is_light():
    import subprocess
    import sys

    heavy = "('torch', 'transformers', 'pycocotools')"
    code = f"import sys, finevl.cli; print(any(m in sys.modules for m in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
