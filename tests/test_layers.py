"""Imports point down the layers of DESIGN.md only (a small AST check)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facegate"

# Lower number = lower layer. A module may import its own layer or any lower one.
RANKS = {
    "types": 0,
    "errors": 0,
    "config": 0,
    "vision": 1,
    "gallery": 2,
    "policy": 3,
    "recognition": 4,
    "events": 5,
    "stream": 6,
    "service": 6,
    "web": 7,
    "eval": 8,
    "bench": 8,
    "cli": 9,
    "__main__": 9,
}
# Same rank, but never each other: they meet in gallery, policy and events.
FORBIDDEN_PAIRS = {("stream", "service"), ("service", "stream")}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "facegate" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def test_every_layer_is_ranked() -> None:
    top_level = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    top_level |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top_level <= set(RANKS), f"unranked layers: {top_level - set(RANKS)}"


def test_imports_point_down() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        own = _layer(".".join(relative.parts))
        if own is None or own == "__init__":
            continue
        for imported in _imports(path):
            target = _layer(imported)
            if target is None or target == own:
                continue
            if RANKS[target] > RANKS[own] or (own, target) in FORBIDDEN_PAIRS:
                violations.append(f"{relative}: imports {imported}")
    assert not violations, "imports that point up or sideways:\n" + "\n".join(violations)


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    # The check itself must be able to fail: a vision module importing the CLI is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("from facegate.cli.main import app\n")
    assert _layer(_imports(bad)[0]) == "cli" and RANKS["cli"] > RANKS["vision"]
