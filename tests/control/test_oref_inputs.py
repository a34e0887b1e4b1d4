"""Input builders of the oref package: arrays in, inputs the decision accepts; the checks
name the field and the rule."""

from __future__ import annotations

import math

import pytest

from openinfusion.control.aid.oref import (
    current_temp,
    determine_basal,
    get_last_glucose,
    glucose_records,
    iob_ticks,
    meal_data,
    oref_profile,
)
from openinfusion.control.aid.oref.inputs import check_iob, check_profile
from openinfusion.errors import InputError

NOW_MS = 1_764_748_800_000


def _decision(bg_slope: float, iob_u: float) -> dict[str, object]:
    times = [NOW_MS - 5 * 60000 * k for k in range(8)]
    cgm = [150.0 - bg_slope * k for k in range(8)]
    decay = [math.exp(-k / 20) for k in range(48)]
    ticks = iob_ticks(
        [iob_u * d for d in decay],
        [iob_u * d / 60 for d in decay],
        [iob_u * d - 0.01 * k for k, d in enumerate(decay)],
        [iob_u * d / 60 - 0.0002 for d in decay],
        last_bolus_time_ms=NOW_MS - 3_600_000,
    )
    profile = oref_profile(1.0, 50, 10, 100, 110, max_iob_u=3)
    status = get_last_glucose(glucose_records(times, cgm))
    return determine_basal(status, current_temp(), ticks, profile, None, meal_data(), False, NOW_MS)


def test_builders_give_a_decision() -> None:
    rising = _decision(bg_slope=4.0, iob_u=0.0)
    assert rising["bg"] == 150 and rising["tick"] == "+4"
    assert rising["rate"] > 1.0 and rising["duration"] == 30  # high temp
    falling = _decision(bg_slope=-6.0, iob_u=2.0)
    assert falling["rate"] < 1.0  # low or zero temp


def test_builders_check_their_arrays() -> None:
    with pytest.raises(InputError, match="one value per time"):
        glucose_records([1.0, 2.0], [100.0])
    with pytest.raises(InputError, match="at least 2 ticks"):
        iob_ticks([1.0], [0.0], [1.0], [0.0])
    with pytest.raises(InputError, match=r"profile\.sens"):
        oref_profile(1.0, 0, 10, 100)


def test_checks_name_field_and_rule() -> None:
    with pytest.raises(InputError) as info:
        check_profile(
            {
                "current_basal": 1,
                "sens": 50,
                "carb_ratio": 10,
                "min_bg": 120,
                "max_bg": 100,
                "max_basal": 3,
                "max_daily_basal": 1,
            }
        )
    assert info.value.field == "profile.min_bg" and "max_bg" in info.value.rule
    with pytest.raises(InputError) as info:
        check_iob(
            [{"iob": 1, "activity": 0, "iobWithZeroTemp": {"activity": 0}}] * 2
            + [{"iob": 1, "activity": 0}]
        )
    assert info.value.field == "iob[2].iobWithZeroTemp"
