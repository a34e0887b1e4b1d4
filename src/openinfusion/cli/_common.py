"""What every command shares: JSON or human output, and exit codes scripts can use.

Exit codes: 0 ok, 2 bad input or usage (one line naming field, value and rule, no
traceback), 3 soft limit reached (override needed), 4 hard limit (blocked).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from openinfusion.errors import InputError, InputErrors, OpenInfusionError

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_SOFT = 3
EXIT_HARD = 4

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON (stable keys).")

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (no NaN; keys in insertion order)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn openinfusion errors into one clear line on stderr and the error's exit code.

    With ``--json`` the error is also printed on stdout as ``{"error": {...}}``.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            _fail(
                exc.as_dict(), f"error: {exc.message}", exc.exit_code, bool(kwargs.get("json_out"))
            )
            if isinstance(exc, InputErrors):
                for problem in exc.problems[1:]:
                    err_console.print(f"error: {problem.message}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except OpenInfusionError as exc:
            _fail(
                {"message": str(exc)}, f"error: {exc}", exc.exit_code, bool(kwargs.get("json_out"))
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _fail(error: dict[str, Any], line: str, code: int, json_out: bool) -> None:
    if json_out:
        print_json({"error": error, "exit_code": code})
    err_console.print(line, markup=False, soft_wrap=True)
