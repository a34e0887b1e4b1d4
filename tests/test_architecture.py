"""Layering (docs: DESIGN.md): lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "openinfusion"

# Package -> layer. ``security`` may import only layer 0 whatever its own number.
LAYERS = {
    "errors": 0,
    "units": 0,
    "patient": 0,
    "library": 1,
    "physiology": 1,
    "pump": 2,
    "control": 3,
    "sim": 4,
    "security": 1,
    "server": 5,
    "interop": 5,
    "analytics": 5,
    "cli": 6,
}
SECURITY_MAY_IMPORT = {"errors", "units", "patient", "security"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "openinfusion" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "__init__.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_goes_up(path: Path) -> None:
    package = path.relative_to(SRC).parts[0].removesuffix(".py")
    if package not in LAYERS:
        pytest.fail(f"{package} has no layer in DESIGN.md; add it to LAYERS")
    for imported in _imports(path):
        if imported in {"__version__", package}:
            continue
        assert imported in LAYERS, f"{path.name} imports unknown package {imported}"
        if package == "security":
            assert imported in SECURITY_MAY_IMPORT, f"security imports {imported}"
        else:
            assert LAYERS[imported] <= LAYERS[package], (
                f"{path.relative_to(SRC)} (layer {LAYERS[package]}) imports "
                f"{imported} (layer {LAYERS[imported]})"
            )
