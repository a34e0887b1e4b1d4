"""Library refinement: a soft limit overridden again and again, and the change the data backs.

A soft maximum that clinicians override routinely teaches them to click through alerts
(most soft alerts are overridden: Melton et al., BMC Med Inform Decis Mak 2019;19:213). The
suggested new soft maximum is the 90th percentile of the overridden values (a soft minimum:
the 10th), offered only with enough overrides and only strictly inside the hard limit: a
suggestion never reaches or crosses a hard limit. It is evidence for the pharmacy and
therapeutics committee, never applied by itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MIN_OVERRIDES = 10
UPPER_Q = 0.90
LOWER_Q = 0.10


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The outcome for one limit: a new soft limit, or why none is suggested."""

    bound: str
    current: float | None
    suggested: float | None
    quantile: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "bound": self.bound,
            "current": self.current,
            "suggested": self.suggested,
            "quantile": self.quantile,
            "reason": self.reason,
        }


def _round_toward(value: float, down: bool) -> float:
    """Three significant figures, rounded toward the soft side (never outward)."""
    if value == 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(abs(value))) - 2
    n = value / 10.0**exponent
    digits = math.floor(n + 1e-9) if down else math.ceil(n - 1e-9)
    return float(f"{digits}e{exponent}")


def suggest_limit(
    values: Sequence[float],
    bound: str,
    soft: float | None,
    hard: float | None,
    min_overrides: int = DEFAULT_MIN_OVERRIDES,
) -> Suggestion:
    """Suggest a new soft limit from the overridden ``values`` of one soft ``bound``
    (``soft_max`` or ``soft_min``); ``soft``/``hard`` are the entry's limits on that side.

    ``soft_max``: p90 rounded down to 3 significant figures, if above ``soft`` and strictly
    below ``hard``. ``soft_min``: p10 rounded up, if below ``soft`` and strictly above
    ``hard``. Otherwise no suggestion, with the reason."""
    if bound not in ("soft_max", "soft_min"):
        return Suggestion(bound, soft, None, None, "only soft limits are refined")
    upper = bound == "soft_max"
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if data.size < min_overrides:
        return Suggestion(
            bound, soft, None, None, f"{data.size} overrides, fewer than {min_overrides}"
        )
    q = float(np.quantile(data, UPPER_Q if upper else LOWER_Q))
    name = "p90" if upper else "p10"
    candidate = _round_toward(q, down=upper)
    if soft is None:
        return Suggestion(bound, soft, None, q, "the entry has no soft limit on this side")
    if upper:
        if hard is not None and not candidate < hard:
            return Suggestion(
                bound, soft, None, q, f"{name} {q:g} is not below the hard maximum {hard:g}"
            )
        if not candidate > soft:
            return Suggestion(
                bound, soft, None, q, f"{name} {q:g} is not above the soft maximum {soft:g}"
            )
    else:
        if hard is not None and not candidate > hard:
            return Suggestion(
                bound, soft, None, q, f"{name} {q:g} is not above the hard minimum {hard:g}"
            )
        if not candidate < soft:
            return Suggestion(
                bound, soft, None, q, f"{name} {q:g} is not below the soft minimum {soft:g}"
            )
    side = "raise the soft maximum" if upper else "lower the soft minimum"
    return Suggestion(
        bound, soft, candidate, q, f"{side} to {candidate:g} ({name} of {data.size} overrides)"
    )


__all__ = ["DEFAULT_MIN_OVERRIDES", "Suggestion", "suggest_limit"]
