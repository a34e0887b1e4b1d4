"""docs/server.md states the permission matrix and the close codes the code enforces."""

from __future__ import annotations

import re
from pathlib import Path

from openinfusion.server import gateway_batch
from openinfusion.server.permissions import MATRIX, Perm, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def test_documented_matrix_is_the_code_matrix() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    table = {}
    header = next(
        line for line in DOC.read_text().splitlines() if line.startswith("| permission |")
    )
    roles = [c.strip() for c in header.strip("|").split("|")][1:]
    assert roles == [r.value for r in Role]
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        match = re.fullmatch(r"`([a-z]+:[a-z]+)`", cells[0])
        if match and len(cells) == len(roles) + 1:
            table[Perm(match.group(1))] = {
                r for r, c in zip(roles, cells[1:], strict=True) if c == "yes"
            }
    assert set(table) == set(Perm)
    for perm, holders in table.items():
        assert holders == {r.value for r in Role if perm in MATRIX[r]}, perm


def test_documented_close_codes_exist() -> None:
    text = DOC.read_text()
    for name in (
        "CLOSE_BAD_FRAME",
        "CLOSE_AUTH",
        "CLOSE_TIMEOUT",
        "CLOSE_CONFLICT",
        "CLOSE_REPLACED",
    ):
        assert f"| {getattr(gateway_batch, name)} |" in text
