"""``openinfusion report``: the maintenance report (pumps ranked by risk of failure)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's report commands to the ``report`` group."""
