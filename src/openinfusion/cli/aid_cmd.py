"""``openinfusion aid ...``: automated insulin delivery decisions and personalisation."""

from __future__ import annotations

import typer

from openinfusion.cli import aid_oref_cmd, aid_personalise_cmd

aid_app = typer.Typer(
    help="Automated insulin delivery: controller decisions and profile personalisation "
    "(docs/aid.md).",
    no_args_is_help=True,
)


@aid_app.callback()
def aid_group() -> None:
    """Automated insulin delivery: controller decisions and profile personalisation."""


aid_personalise_cmd.register(aid_app)
aid_oref_cmd.register(aid_app)
