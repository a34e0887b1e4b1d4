"""The batch oref decision (``oref.batch``) against the scalar ``determine_basal`` on the
parity test's 1,200 generated cases: every numeric output, every displayed curve and, on
demand, the whole result with its reason text."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from openinfusion.control.aid.oref import batch_result as result_module
from openinfusion.control.aid.oref import determine_basal, get_last_glucose, to_json
from openinfusion.control.aid.oref.batch import (
    CURVES,
    NUMERIC_FIELDS,
    BatchResult,
    Branch,
    determine_basal_batch,
)
from openinfusion.control.aid.oref.batch_inputs import ScalarCase, batch_inputs
from tests.control.oref_cases import make_cases

N_CASES = 1200
SEED = 20251203
MAX_FALLBACK = 12  # 1 %: inputs the arrays cannot hold (none in this set)


def _scalar_cases() -> list[ScalarCase]:
    out = []
    for case in make_cases(N_CASES, SEED):
        try:
            out.append(ScalarCase.from_reference(case))
        except ValueError:  # the glucose records give no status
            continue
    return out


@pytest.fixture(scope="module")
def decided() -> tuple[list[ScalarCase], list[dict[str, Any]], BatchResult]:
    cases = _scalar_cases()
    scalar = [determine_basal(*case) for case in cases]
    return cases, scalar, determine_basal_batch(batch_inputs(cases))


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def test_every_numeric_output_equals_the_scalar_decision(decided: Any) -> None:
    cases, scalar, result = decided
    failures = []
    for i, expected in enumerate(scalar):
        for key, name in NUMERIC_FIELDS.items():
            there = key in expected
            if there != bool(result.present[name][i]):
                failures.append(f"case {i} {key}: present {result.present[name][i]}")
            elif there and not _same(_number(expected[key]), float(result.values[name][i])):
                failures.append(f"case {i} {key}: {result.values[name][i]!r} != {expected[key]!r}")
        pred_bgs = expected.get("predBGs", {})
        for curve in CURVES:
            want = pred_bgs.get(curve, [])
            got = result.curves[curve][i, : result.curve_len[curve][i]].tolist()
            if len(want) != len(got) or not all(map(_same, want, got)):
                failures.append(f"case {i} predBGs.{curve}: {got} != {want}")
    assert not failures, f"{len(failures)} differences:\n" + "\n".join(failures[:20])
    assert len(cases) > 1100


def test_fallback_is_rare_and_reported(decided: Any) -> None:
    cases, _, result = decided
    print(
        f"batch fallback: {result.fallback_count} of {len(cases)} cases decided by the scalar path"
    )
    assert result.fallback_count <= MAX_FALLBACK
    assert (result.branch == Branch.FALLBACK).sum() == result.fallback_count
    # The vectorized path decides the whole range of rules, not only the easy ones,
    # and answers the generator's odd inputs (errors) as the reference does.
    reached = {Branch(b) for b in np.unique(result.branch)}
    assert len(reached) >= 20, sorted(reached)
    assert {Branch.INPUT_ERROR, Branch.NO_EVENTUAL_BG, Branch.MICRO_BOLUS_TEMP} <= reached


def test_decision_materialises_the_scalar_result_with_its_reason(decided: Any) -> None:
    _, scalar, result = decided
    failures = [
        i for i, expected in enumerate(scalar) if to_json(result.decision(i)) != to_json(expected)
    ]
    assert not failures, f"{len(failures)} differ, first {failures[:10]}"


def test_batch_numbers_do_not_come_from_the_scalar_function(
    decided: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the fallback cases may call the scalar function while the batch decides."""
    cases, _, reference = decided
    calls: list[int] = []
    real = result_module.determine_basal

    def counting(*args: Any) -> dict[str, Any]:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(result_module, "determine_basal", counting)
    inputs = batch_inputs(cases)
    before = {name: values.copy() for name, values in inputs.floats.items()}
    again = determine_basal_batch(inputs)
    assert len(calls) == reference.fallback_count
    for name, values in reference.values.items():
        assert np.array_equal(values, again.values[name], equal_nan=True), name
    # The inputs are left as they were, and a second call gives the same numbers.
    for name, values in before.items():
        assert np.array_equal(values, inputs.floats[name], equal_nan=True), name
    third = determine_basal_batch(inputs)
    for name, values in again.values.items():
        assert np.array_equal(values, third.values[name], equal_nan=True), name


def test_a_case_the_arrays_cannot_hold_falls_back_alone() -> None:
    cases = _scalar_cases()[:20]
    odd = cases[3]._replace(profile={k: v for k, v in cases[3].profile.items() if k != "sens"})
    mixed = [*cases[:3], odd, *cases[4:]]
    result = determine_basal_batch(batch_inputs(mixed))
    assert result.branch[3] == Branch.FALLBACK
    assert to_json(result.decision(3)) == to_json(determine_basal(*odd))
    plain = determine_basal_batch(batch_inputs(cases))
    keep = np.arange(len(cases)) != 3
    for name, values in plain.values.items():
        assert np.array_equal(values[keep], result.values[name][keep], equal_nan=True), name


def test_the_trial_adapter_decides_all_patients_in_one_batch() -> None:
    """Four patients (high, low, in range, no reading): one batch call; the Command's reasons
    name the rule; each full decision equals the scalar one on the adapter's own inputs."""
    from openinfusion.control.aid import OrefController
    from tests.control.test_oref_controller import observation

    obs = observation([3.0, -4.0, 0.5, 1.0], [220.0, 75.0, 115.0, 150.0])
    obs.cgm_mg_dl[3] = np.nan
    ctrl = OrefController(smb=True)
    cmd = ctrl.step(obs)
    result = ctrl.last_result
    assert result is not None and result.inputs.n == 3
    assert cmd.reasons[3] == "oref: no CGM reading"
    assert ctrl.decision(3) == {"error": "no CGM reading"}
    names = {f"oref: {b.name.lower().replace('_', ' ')}" for b in Branch}
    for i in range(3):
        assert cmd.reasons[i] in names
        scalar = determine_basal(*result.inputs.scalar_case(i))
        assert to_json(ctrl.decision(i)) == to_json(scalar)
    assert cmd.reasons[1] == "oref: low suspend"
    assert cmd.temp_basal_u_h[1] == 0.0


def test_a_case_decides_the_same_whatever_its_neighbours(decided: Any) -> None:
    """Reversed order and a batch of a different size (the work arrays re-made) give each
    case the same numbers."""
    cases, _, result = decided
    order = np.arange(len(cases))[::-1]
    reversed_ = determine_basal_batch(batch_inputs([cases[i] for i in order]))
    small = determine_basal_batch(batch_inputs(cases[:7]))
    for name, values in result.values.items():
        assert np.array_equal(values[order], reversed_.values[name], equal_nan=True), name
        assert np.array_equal(values[:7], small.values[name], equal_nan=True), name
    assert np.array_equal(result.branch[order], reversed_.branch)


def test_batch_glucose_status_equals_the_scalar_status() -> None:
    """Shared time grids (regular, jittered, with gaps, readings at or below 38 mg/dL and
    two readings within 2.5 min): every exact patient's status equals get_last_glucose."""
    from openinfusion.control.aid.oref import glucose_records
    from openinfusion.control.aid.oref.batch_glucose import glucose_status_batch, status_dict

    rng = np.random.default_rng(11)
    checked = inexact = 0
    for grid in range(40):
        t_min = 5.0 * np.arange(13) + (rng.uniform(-0.4, 0.4, 13) if grid % 2 else 0.0)
        if grid % 5 == 0:
            t_min[-2] = t_min[-1] - 1.0  # a second reading within 2.5 min of the newest
        t_ms = 1.7e12 + t_min * 60_000.0
        bg = np.round(rng.uniform(30, 400, (25, 13)) + rng.normal(0, 3, (25, 13)), 1)
        bg[rng.random(bg.shape) < 0.15] = np.nan
        bg[rng.random(bg.shape) < 0.03] = 38.0
        batch = glucose_status_batch(t_ms, bg)
        for i in range(bg.shape[0]):
            have = ~np.isnan(bg[i])
            assert batch.found[i] == have.any()
            if not have.any():
                continue
            if not batch.exact[i]:
                inexact += 1
                continue
            scalar = get_last_glucose(glucose_records(t_ms[have].tolist(), bg[i][have].tolist()))
            assert to_json(status_dict(batch, i, "openinfusion")) == to_json(scalar), (grid, i)
            checked += 1
    assert checked > 800 and inexact > 0


def test_tick_arrays_read_as_the_calculate_iob_list() -> None:
    """TickArrays gives the ticks iob_ticks makes, and the batch builder the same arrays
    and decisions from either."""
    from openinfusion.control.aid.oref import iob_ticks
    from openinfusion.control.aid.oref.batch_inputs import TickArrays

    cases = _scalar_cases()[:60]
    swapped = []
    for case in cases:
        ticks = case.iob_data
        if len(ticks) != 48 or any("iobWithZeroTemp" not in t for t in ticks):
            continue
        arrays = [
            np.array([t["iob"] for t in ticks], dtype=float),
            np.array([t["activity"] for t in ticks], dtype=float),
            np.array([t["iobWithZeroTemp"]["iob"] for t in ticks], dtype=float),
            np.array([t["iobWithZeroTemp"]["activity"] for t in ticks], dtype=float),
        ]
        extra = {
            "last_bolus_time_ms": ticks[0].get("lastBolusTime"),
            "last_temp": ticks[0].get("lastTemp"),
        }
        lazy = TickArrays(*arrays, **extra)
        listed = iob_ticks(*(a.tolist() for a in arrays), **extra)
        assert len(lazy) == 48 and list(lazy) == listed and lazy[-1] == listed[-1]
        assert lazy[2:5] == listed[2:5]
        swapped.append(case._replace(iob_data=lazy))
    plain = batch_inputs([case._replace(iob_data=list(case.iob_data)) for case in swapped])
    fast = batch_inputs(swapped)
    assert len(swapped) > 40
    assert np.array_equal(plain.activity, fast.activity)
    assert np.array_equal(plain.zt_activity, fast.zt_activity)
    for name in plain.floats:
        assert np.array_equal(plain.floats[name], fast.floats[name], equal_nan=True), name
    a, b = determine_basal_batch(plain), determine_basal_batch(fast)
    for i in range(len(swapped)):
        assert to_json(a.decision(i)) == to_json(b.decision(i))
