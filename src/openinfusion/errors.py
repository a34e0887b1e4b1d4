"""Error types shared by every layer.

A user mistake is an :class:`InputError`: it names the field, the value and the rule that
was broken, so the command line can print one clear line and exit with code 2.
"""

from __future__ import annotations

from collections.abc import Sequence


class OpenInfusionError(Exception):
    """Base class of every error openinfusion raises on purpose."""

    exit_code: int = 1


class InputError(OpenInfusionError, ValueError):
    """Bad input: ``field`` holding ``value`` breaks ``rule``."""

    exit_code = 2

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.value is None or self.value == "":
            return f"{self.field}: {self.rule}"
        return f"{self.field} {self.value!r}: {self.rule}"

    def as_dict(self) -> dict[str, object]:
        """Stable, JSON-friendly form: ``field``, ``value``, ``rule``, ``message``."""
        value = (
            self.value
            if isinstance(self.value, str | int | float | bool | None)
            else str(self.value)
        )
        return {"field": self.field, "value": value, "rule": self.rule, "message": self.message}


class InputErrors(InputError):
    """Several input problems found at once (a whole file is rejected, none applied)."""

    def __init__(self, what: str, problems: Sequence[InputError]) -> None:
        if not problems:
            raise ValueError("InputErrors needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(first.field, first.value, first.rule + suffix)
        self.what = what

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["problems"] = [p.as_dict() for p in self.problems]
        return out
