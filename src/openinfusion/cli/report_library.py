"""``openinfusion report``: the library-verify report (limits simulated on virtual populations)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from openinfusion.cli._common import err_console, handle_errors
from openinfusion.errors import InputError
from openinfusion.library import Library, sample_library

DEFAULT_DATA_DIR = Path("openinfusion-data")
FORMATS = ("json", "html", "png")


def _library(file: Path | None, version: str | None, db: str | None, data_dir: Path) -> Library:
    if file is not None and version is not None:
        raise InputError("--version", version, "give either --library or --version, not both")
    if version is not None:
        from openinfusion.analytics.library_verify_source import load_published

        return load_published(db, data_dir, version)
    if db is not None:
        raise InputError("--db", db, "is only used with --version")
    if file is not None:
        from openinfusion.cli.library_cmd import _load_any

        return _load_any(file)
    return sample_library()


def _write(data: bytes, out: Path | None, binary: bool) -> None:
    if out is not None:
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise InputError("--out", str(out), f"cannot be written ({exc.strerror})") from None
        return
    if binary and sys.stdout.isatty():
        raise InputError("--out", "", "is required for PNG output on a terminal")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add this module's report commands to the ``report`` group."""

    @app.command("library-verify")
    @handle_errors
    def library_verify_cmd(
        library: Path | None = typer.Option(
            None, "--library", help="Library file (.yaml/.json) or signed package."
        ),
        version: str | None = typer.Option(
            None, "--version", help="A library version published on the server."
        ),
        db: str | None = typer.Option(None, "--db", help="Server database URL (with --version)."),
        data_dir: Path = typer.Option(
            DEFAULT_DATA_DIR, "--data-dir", help="Server data directory (with --version)."
        ),
        care_area: str | None = typer.Option(None, "--care-area", help="Only this care area."),
        patients: int = typer.Option(500, "--patients", help="Virtual patients per population."),
        seed: int = typer.Option(0, "--seed", help="Seed of the virtual populations."),
        fmt: str = typer.Option("json", "--format", help="json, html or png (the main chart)."),
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    ) -> None:
        """Simulate every drug entry's dose limits on virtual patients of its care area and
        flag limits that lead outside the therapeutic window (default: the sample library).
        Exit 0 when no limit is flagged, 3 when a soft limit is, 4 when a hard limit is."""
        from openinfusion.analytics.library_verify import exit_code, verify_library
        from openinfusion.analytics.library_verify_report import chart_png, report_html

        if fmt not in FORMATS:
            raise InputError("--format", fmt, "must be json, html or png")
        from rich.progress import Progress

        lib = _library(library, version, db, data_dir)
        total = len(lib.entries_for(care_area)) if care_area else len(lib.entries)
        # A bar on the terminal's stderr only: stdout carries the report.
        with Progress(
            transient=True, disable=not err_console.is_terminal, console=err_console
        ) as bar:
            task = bar.add_task("verifying entries", total=total)
            report = verify_library(
                lib,
                care_area=care_area,
                patients=patients,
                seed=seed,
                progress=lambda n: bar.advance(task, n),
            )
        if fmt == "json":
            text = json.dumps(report.as_dict(), indent=2, ensure_ascii=False, allow_nan=False)
            _write((text + "\n").encode(), out, binary=False)
        elif fmt == "html":
            _write(report_html(report).encode(), out, binary=False)
        else:
            _write(chart_png(report), out, binary=True)
        code = exit_code(report)
        if code:
            s = report.summary
            err_console.print(
                f"library {lib.version}: {s['hard limit leads outside window']} entries with a "
                f"hard limit and {s['soft limit leads outside window']} with a soft limit "
                "leading outside the therapeutic window",
                markup=False,
            )
            raise typer.Exit(code)


__all__ = ["register"]
