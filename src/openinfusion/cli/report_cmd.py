"""``openinfusion report``: fleet reports for safety committees and biomedical engineering.

Each report lives in its own module and adds its command here through ``register``:
compliance, overrides and alarms (report_safety), library-verify (report_library),
maintenance (report_maintenance).
"""

from __future__ import annotations

import typer

from openinfusion.cli import report_library, report_maintenance, report_safety

report_app = typer.Typer(
    help="Fleet reports: DERS compliance, overrides, alarm burden, library verification, "
    "maintenance (--format json|html|png).",
    no_args_is_help=True,
)
for _module in (report_safety, report_library, report_maintenance):
    _module.register(report_app)
