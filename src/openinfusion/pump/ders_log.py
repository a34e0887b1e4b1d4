"""What a pump reports about each DERS check, for the hospital's continuous quality review.

A ``programmed`` event carries ``ders`` (:func:`ders_record`): whether the program used a
library entry or was a basic infusion, the care area, the verdict, the override reason and
every limit crossed with the entry's soft and hard limit on that side. A program that DERS
refused never starts; the pump records it as a ``ders_alert`` event
(:func:`refusal_record`) with outcome ``blocked`` (hard limit) or ``cancelled`` (a soft
alert the clinician did not override). The terms (override, reprogram, cancel, basic
infusion) are those of smart-pump CQI reviews (Melton et al., BMC Med Inform Decis Mak
2019;19:213, Table 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openinfusion.library import DrugEntry, Level, Verdict

if TYPE_CHECKING:
    from openinfusion.pump.therapies import Programmed

# Finding parameter -> the entry's limit group in the same unit as the finding.
_GROUPS = {
    "dose": "dose",
    "rate": "rate_ml_h",
    "vtbi": "vtbi_ml",
    "duration": "duration_min",
    "bolus": "bolus",
    "loading": "loading",
}
_OTHER_SIDE = {
    "soft_max": ("soft_max", "hard_max"),
    "hard_max": ("soft_max", "hard_max"),
    "soft_min": ("soft_min", "hard_min"),
    "hard_min": ("soft_min", "hard_min"),
}


def _limits_of(entry: DrugEntry | None, parameter: str, bound: str) -> tuple[Any, Any]:
    """(soft, hard) limit of ``entry`` on the side of ``bound`` for ``parameter``."""
    group = _GROUPS.get(parameter)
    if entry is None or group is None or bound not in _OTHER_SIDE:
        return None, None
    limits = getattr(entry.limits, group, None)
    if limits is None:
        return None, None
    soft_name, hard_name = _OTHER_SIDE[bound]
    return getattr(limits, soft_name), getattr(limits, hard_name)


def alerts(verdict: Verdict | None, entry: DrugEntry | None) -> list[dict[str, Any]]:
    """Every limit the program crossed (soft or hard), with the entry's limits on that side.

    Values and limits are in the library's units for the parameter."""
    if verdict is None:
        return []
    out = []
    for finding in verdict.findings:
        if finding.level is Level.OK or finding.bound is None:
            continue
        soft, hard = _limits_of(entry, finding.parameter, finding.bound)
        out.append(
            {
                "parameter": finding.parameter,
                "value": finding.value,
                "unit": finding.unit,
                "level": finding.level.label,
                "bound": finding.bound,
                "limit": finding.limit,
                "soft_limit": soft,
                "hard_limit": hard,
            }
        )
    return out


def _base(
    verdict: Verdict | None, entry: DrugEntry | None, summary: dict[str, Any]
) -> dict[str, Any]:
    return {
        "library": entry is not None,
        "drug": entry.drug if entry is not None else None,
        "entry": entry.label if entry is not None else None,
        "care_area": verdict.care_area if verdict is not None else None,
        "verdict": verdict.label if verdict is not None else None,
        "dose": summary.get("dose"),
        "dose_unit": summary.get("dose_unit"),
        "rate_ml_h": summary.get("rate_ml_h"),
        "alerts": alerts(verdict, entry),
    }


def ders_record(programmed: Programmed) -> dict[str, Any]:
    """The DERS facts of a program that is being loaded (``programmed`` event ``ders``)."""
    out = _base(programmed.verdict, programmed.entry, programmed.summary)
    out["override_reason"] = programmed.override.reason if programmed.override else None
    return out


def refusal_record(
    verdict: Verdict, entry: DrugEntry | None, program: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A program DERS refused (``ders_alert`` event): blocked by a hard limit, or a soft
    alert not overridden (cancelled). ``program``: what was typed (dose, dose_unit, ...)."""
    out = _base(verdict, entry, program or {})
    out["outcome"] = "blocked" if verdict.level is Level.HARD else "cancelled"
    out["level"] = verdict.level.label
    return out


__all__ = ["alerts", "ders_record", "refusal_record"]
