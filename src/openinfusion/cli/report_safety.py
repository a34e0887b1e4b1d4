"""``openinfusion report``: compliance, overrides and alarms reports."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's report commands to the ``report`` group."""
