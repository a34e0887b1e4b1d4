"""``openinfusion report``: compliance, overrides and alarms reports.

Each reads the server database (``--db URL``, or ``openinfusion.db`` in ``--data-dir``) for
a window (``--since``/``--until``, UTC dates or timestamps) and a care unit (``--unit``),
and writes JSON, an HTML page with its chart, or the chart alone (PNG). Exit codes: 0 ok,
2 bad input (a filter that does not parse, a missing database, an unreadable schema).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.cli.server_cmd import DataDirOption, DbOption
from openinfusion.errors import InputError

SinceOption = typer.Option(None, "--since", help="From this UTC date/time (YYYY-MM-DD or ISO).")
UntilOption = typer.Option(None, "--until", help="Before this UTC date/time (exclusive).")
UnitOption = typer.Option(None, "--unit", help="Only pumps of this care unit.")
OutOption = typer.Option(None, "--out", help="Write the report to this file.")


class Format(StrEnum):
    json = "json"
    html = "html"
    png = "png"


FormatOption = typer.Option(Format.json, "--format", help="json, html (page with chart) or png.")


def _emit(report: dict[str, Any], fmt: Format, out: Path | None) -> None:
    from openinfusion.analytics.safety_render import report_html, report_png

    if fmt is Format.json:
        if out is None:
            print_json(report)
            return
        import json

        out.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    else:
        data = report_html(report).encode() if fmt is Format.html else report_png(report)
        if out is None:
            if sys.stdout.isatty():
                raise InputError("out", "", f"is needed to write {fmt.value} to a terminal")
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        out.write_bytes(data)
    console.print(f"{report['report']} report written to {out}")


def _run(
    name: str,
    since: str | None,
    until: str | None,
    unit: str | None,
    db: str | None,
    data_dir: Path,
    fmt: Format,
    out: Path | None,
    json_out: bool,
    options: dict[str, Any],
) -> None:
    from openinfusion.analytics.safety import run_report
    from openinfusion.analytics.source import open_database
    from openinfusion.analytics.window import parse_window

    window = parse_window(since, until, unit)
    if out is not None and not out.parent.is_dir():
        raise InputError("out", str(out), "must be in an existing directory")
    database = open_database(db, data_dir)
    try:
        with database.read() as session:
            report = run_report(name, session, window, options)
    finally:
        database.dispose()
    _emit(report, Format.json if json_out else fmt, out)


def register(app: typer.Typer) -> None:
    """Add this module's report commands to the ``report`` group."""

    @app.command("compliance")
    @handle_errors
    def compliance(
        since: str | None = SinceOption,
        until: str | None = UntilOption,
        unit: str | None = UnitOption,
        bucket: str = typer.Option("day", "--bucket", help="day or week."),
        db: str | None = DbOption,
        data_dir: Path = DataDirOption,
        fmt: Format = FormatOption,
        out: Path | None = OutOption,
        json_out: bool = JsonOption,
    ) -> None:
        """DERS compliance: library programs vs basic infusions, by area, unit and time."""
        _run("compliance", since, until, unit, db, data_dir, fmt, out, json_out, {"bucket": bucket})

    @app.command("overrides")
    @handle_errors
    def overrides(
        since: str | None = SinceOption,
        until: str | None = UntilOption,
        unit: str | None = UnitOption,
        min_overrides: int = typer.Option(
            10, "--min-overrides", help="Overrides needed before a limit change is suggested."
        ),
        db: str | None = DbOption,
        data_dir: Path = DataDirOption,
        fmt: Format = FormatOption,
        out: Path | None = OutOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Soft alerts, overrides and reasons, hard blocks, reprograms; refinement candidates."""
        _run(
            "overrides",
            since,
            until,
            unit,
            db,
            data_dir,
            fmt,
            out,
            json_out,
            {"min_overrides": min_overrides},
        )

    @app.command("alarms")
    @handle_errors
    def alarms(
        since: str | None = SinceOption,
        until: str | None = UntilOption,
        unit: str | None = UnitOption,
        nuisance_s: float = typer.Option(
            10.0, "--nuisance-s", help="Cleared within this many seconds, unacknowledged."
        ),
        repeat_min: float = typer.Option(
            30.0, "--repeat-min", help="Same alarm on the same channel within this many min."
        ),
        db: str | None = DbOption,
        data_dir: Path = DataDirOption,
        fmt: Format = FormatOption,
        out: Path | None = OutOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Alarm burden: per 1,000 infusion-hours, time to acknowledge, nuisance, fatigue."""
        _run(
            "alarms",
            since,
            until,
            unit,
            db,
            data_dir,
            fmt,
            out,
            json_out,
            {"nuisance_s": nuisance_s, "repeat_min": repeat_min},
        )
