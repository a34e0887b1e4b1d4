"""Glucose targets, sensitivity ratio, basal and ISF for one oref0 decision (npm ``oref0``
0.7.1, determine-basal; AID_REFERENCE.md §2.3). Glucose in mg/dL, basal U/h, ISF mg/dL/U.

- target = (min_bg + max_bg) / 2.
- A high temp target (with ``high_temptarget_raises_sensitivity`` or ``exercise_mode``) or
  a low one (with ``low_temptarget_lowers_sensitivity``) sets the ratio c/(c + target − 100),
  c = half_basal_exercise_target − 100, at most autosens_max; otherwise autosens sets it.
- Basal × ratio; ISF / ratio (only when autosens data is given, as in the reference).
- Without a temp target, autosens < 1 (``sensitivity_raises_target``) or > 1
  (``resistance_lowers_target``) moves the targets to (t − 60)/ratio + 60, target >= 80.
- Noisy CGM (noise >= 2) raises the targets by ``noisyCGMTargetMultiplier`` (>= 1.1), at
  most 200.
- Hypo threshold = min_bg − (min_bg − 40)/2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openinfusion.control.aid.oref._js import jdiv, jmax, jmin, num, round_to, truthy
from openinfusion.control.aid.oref.temp_basal import round_basal

_NORMAL_TARGET_MG_DL = 100.0  # temp targets are judged high or low against this
_DEFAULT_HALF_BASAL_TARGET_MG_DL = 160.0  # a 160 temp target halves basal


@dataclass(frozen=True, slots=True)
class Targets:
    """Targets (mg/dL), the sensitivity ratio (None when undefined), the adjusted basal
    (U/h) and ISF (mg/dL/U)."""

    min_bg: float
    max_bg: float
    target_bg: float
    threshold: float
    ratio: Any
    basal: float
    sens: float


def adjusted_targets(
    profile: Mapping[str, Any],
    autosens_data: Mapping[str, Any] | None,
    noise: float,
    current_basal_u_h: float,
) -> Targets | None:
    """The decision's targets and sensitivity; None when min_bg or max_bg is missing."""
    if profile.get("min_bg") is None or profile.get("max_bg") is None:
        return None
    min_bg = num(profile.get("min_bg"))
    max_bg = num(profile.get("max_bg"))
    target_bg = (min_bg + max_bg) / 2
    temp_target_set = truthy(profile.get("temptargetSet"))
    raises_sensitivity = truthy(profile.get("exercise_mode")) or truthy(
        profile.get("high_temptarget_raises_sensitivity")
    )
    half_basal_target = (
        num(profile.get("half_basal_exercise_target"))
        if truthy(profile.get("half_basal_exercise_target"))
        else _DEFAULT_HALF_BASAL_TARGET_MG_DL
    )
    autosens_max = num(profile.get("autosens_max"))
    ratio: Any = None  # undefined unless a temp target or autosens sets it
    if (raises_sensitivity and temp_target_set and target_bg > _NORMAL_TARGET_MG_DL) or (
        truthy(profile.get("low_temptarget_lowers_sensitivity"))
        and temp_target_set
        and target_bg < _NORMAL_TARGET_MG_DL
    ):
        c = half_basal_target - _NORMAL_TARGET_MG_DL
        if c * (c + target_bg - _NORMAL_TARGET_MG_DL) <= 0.0:
            ratio = autosens_max
        else:
            ratio = c / (c + target_bg - _NORMAL_TARGET_MG_DL)
        ratio = round_to(jmin(ratio, autosens_max), 2)
    elif autosens_data is not None:
        ratio = autosens_data.get("ratio")
    ratio_num = num(ratio)
    basal = round_basal(current_basal_u_h, profile)
    if truthy(ratio):
        basal = round_basal(current_basal_u_h * ratio_num, profile)

    if not temp_target_set and autosens_data is not None:
        as_ratio = num(autosens_data.get("ratio"))
        if (truthy(profile.get("sensitivity_raises_target")) and as_ratio < 1) or (
            truthy(profile.get("resistance_lowers_target")) and as_ratio > 1
        ):
            min_bg = round_to(jdiv(min_bg - 60, as_ratio)) + 60
            max_bg = round_to(jdiv(max_bg - 60, as_ratio)) + 60
            target_bg = jmax(80, round_to(jdiv(target_bg - 60, as_ratio)) + 60)

    if noise >= 2:
        multiplier = jmax(1.1, num(profile.get("noisyCGMTargetMultiplier")))
        min_bg = round_to(jmin(200, min_bg * multiplier))
        target_bg = round_to(jmin(200, target_bg * multiplier))
        max_bg = round_to(jmin(200, max_bg * multiplier))

    threshold = min_bg - 0.5 * (min_bg - 40)  # min_bg 90 -> 65, 100 -> 70, 130 -> 85
    sens = num(profile.get("sens"))
    if autosens_data is not None:
        sens = round_to(jdiv(sens, ratio_num), 1)
    return Targets(min_bg, max_bg, target_bg, threshold, ratio, basal, sens)
