"""``openinfusion hl7``: send, listen to and explain HL7 v2 messages (IHE PCD) over MLLP."""

from __future__ import annotations

import typer

hl7_app = typer.Typer(
    help="HL7 v2 over MLLP for integration testing: send, listen, explain.",
    no_args_is_help=True,
)
