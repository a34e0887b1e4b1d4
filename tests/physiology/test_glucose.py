"""UVA/Padova 2008 glucose model: parameters, steady state, meals, batching, defects, errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.physiology.glucose import (
    GlucoseParameters,
    GlucosePatients,
    State,
    simulate,
    subject_names,
)


def test_thirty_subjects_in_table_order() -> None:
    names = subject_names()
    assert len(names) == 30
    assert names[0] == "adolescent#001"
    assert names[10] == "adult#001"
    assert names[29] == "child#010"
    assert GlucosePatients.all().names == names


def test_from_names_keeps_order_and_repeats() -> None:
    p = GlucosePatients.from_names(["child#001", "adult#001", "child#001"])
    assert p.names == ("child#001", "adult#001", "child#001")
    assert p.state.shape == (3, 13)
    assert p.state[0].tolist() == p.state[2].tolist()


def test_unknown_subject_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"adult#011.*not a UVA/Padova 2008 subject"):
        GlucosePatients.from_names(["adult#011"])
    with pytest.raises(InputError, match="at least one"):
        GlucosePatients.from_names([])


def test_parameters_from_the_table() -> None:
    p = GlucoseParameters.from_names(["adolescent#001"])
    assert p.body_weight_kg[0] == 68.706
    assert p.basal_glucose_mg_dl[0] == 149.02
    assert p.carb_ratio_g_per_u[0] == 12.0
    assert p.initial_state[0, State.GP] == 250.621836
    # Basal: u2ss·BW/6000 U/min = 1.21697571391 × 68.706 / 6000 × 60 U/h.
    assert GlucosePatients.from_names(["adolescent#001"]).steady_state_basal_u_per_h[
        0
    ] == pytest.approx(1.21697571391 * 68.706 / 100.0)


def test_table_state_is_a_steady_state_at_basal() -> None:
    p = GlucosePatients.all()
    bg0 = p.bg_mg_dl.copy()
    np.testing.assert_allclose(bg0, p.parameters.basal_glucose_mg_dl, atol=1e-6)
    bg = simulate(p, 24 * 60, 0.0, p.steady_state_basal_u_per_min[:, None])
    assert np.abs(bg - bg0[:, None]).max() < 1e-6


def test_carbs_raise_and_insulin_lowers_glucose() -> None:
    p = GlucosePatients.from_names(["adult#001"])
    basal = p.steady_state_basal_u_per_min
    meal = simulate(p.copy(), 180, np.r_[50.0, np.zeros(179)], basal[:, None])
    bolus = simulate(p.copy(), 240, 0.0, basal[:, None] + np.r_[3.0, np.zeros(239)])
    assert meal[0].max() > meal[0, 0] + 40.0
    assert bolus[0, -1] < bolus[0, 0] - 15.0


def test_announced_carbs_are_eaten_at_5_g_per_min() -> None:
    p = GlucosePatients.from_names(["adult#001", "child#001"])
    p.step(carbs_g=[50.0, 12.0])
    np.testing.assert_allclose(p.carbs_waiting_g, [45.0, 7.0])
    p.step(minutes=2)
    np.testing.assert_allclose(p.carbs_waiting_g, [35.0, 0.0])
    p.step(minutes=7)
    assert p.carbs_waiting_g.tolist() == [0.0, 0.0]
    # All 50 g (50,000 mg) went into the stomach: after 10 min, stomach + gut + what was
    # absorbed ≈ 50 g; the gut has only just started absorbing.
    gut_mg = p.state[0, State.Q_STO1] + p.state[0, State.Q_STO2] + p.state[0, State.Q_GUT]
    assert 45_000.0 < gut_mg <= 50_000.0


def test_intake_already_spread_at_5_g_per_min_is_eaten_as_given() -> None:
    # Announcing 60 g in one minute and passing the eaten intake (5 g/min for 12 min)
    # are the same input: the queue never holds more than one minute's worth.
    announced = np.zeros(120)
    announced[10] = 60.0
    spread = np.zeros(120)
    spread[10:22] = 5.0
    a = simulate(GlucosePatients.from_names(["adult#001"]), 120, announced, 0.02)
    b = simulate(GlucosePatients.from_names(["adult#001"]), 120, spread, 0.02)
    assert np.array_equal(a, b)


def test_step_of_five_minutes_equals_five_steps() -> None:
    a = GlucosePatients.from_names(["adolescent#004", "adult#009"])
    b = a.copy()
    a.step(carbs_g=30.0, insulin_u_per_min=0.2, minutes=5)
    b.step(carbs_g=30.0, insulin_u_per_min=0.2)
    for _ in range(4):
        b.step(insulin_u_per_min=0.2)
    assert a.t_min == b.t_min == 5
    assert np.array_equal(a.state, b.state)


def test_simulate_equals_stepping() -> None:
    p = GlucosePatients.from_names(["child#003", "adult#002"])
    q = p.copy()
    carbs = np.zeros((2, 90))
    carbs[:, 10] = [20.0, 60.0]
    insulin = np.full((2, 90), 0.01)
    insulin[:, 12] = [1.0, 4.0]
    bg = simulate(p, 90, carbs, insulin)
    stepped = [q.bg_mg_dl.copy()]
    for t in range(90):
        stepped.append(q.step(carbs[:, t], insulin[:, t]).copy())
    assert np.array_equal(bg, np.array(stepped).T)
    assert np.array_equal(p.state, q.state)


def test_a_subject_evolves_the_same_alone_or_in_a_batch() -> None:
    names = list(subject_names())
    batch = GlucosePatients.from_names(names)
    carbs = np.zeros((30, 600))
    carbs[:, 60] = np.linspace(20, 100, 30)
    insulin = batch.steady_state_basal_u_per_min[:, None] * np.linspace(0.0, 3.0, 600)
    bg = simulate(batch, 600, carbs, insulin)
    for i in (0, 17, 29):
        alone = simulate(GlucosePatients.from_names([names[i]]), 600, carbs[i], insulin[i])
        np.testing.assert_allclose(alone[0], bg[i], rtol=0, atol=1e-9)


def test_utilisation_floor_acts_only_when_insulin_falls_far_below_basal() -> None:
    # child#004: Vm0 + Vmx·X < 0 once plasma insulin falls ~30 % below basal (defect D4).
    insulin = np.zeros((1, 600))
    insulin[0, 240:] = GlucosePatients.from_names(["child#004"]).steady_state_basal_u_per_min[0]
    floored = GlucosePatients.from_names(["child#004"])
    raw = GlucosePatients.from_names(["child#004"], floor_utilisation=False)
    bg_floored = simulate(floored, 600, 0.0, insulin)
    bg_raw = simulate(raw, 600, 0.0, insulin)
    assert np.abs(bg_floored[0, :30] - bg_raw[0, :30]).max() < 1e-9  # X still near 0
    assert bg_raw[0].max() > bg_floored[0].max() + 100.0  # tissues "producing" glucose
    # With a basal-level insulin supply both agree everywhere.
    basal = floored.steady_state_basal_u_per_min[:, None]
    a = simulate(GlucosePatients.from_names(["child#004"]), 300, 0.0, basal)
    b = simulate(
        GlucosePatients.from_names(["child#004"], floor_utilisation=False), 300, 0.0, basal
    )
    assert np.array_equal(a, b)


def test_overdose_keeps_masses_non_negative_and_finite() -> None:
    p = GlucosePatients.from_names(["child#001"])
    bg = simulate(p, 24 * 60, 0.0, np.r_[50.0, np.zeros(24 * 60 - 1)])
    assert np.isfinite(p.state).all()
    assert bg.min() >= 0.0
    masses = np.delete(p.state[0], [State.X])
    assert (masses >= 0.0).all()


@settings(max_examples=15, deadline=None)
@given(
    carbs=st.lists(st.floats(0, 150), min_size=6, max_size=6),
    rates=st.lists(st.floats(0, 2.0), min_size=6, max_size=6),
)
def test_any_dosing_gives_finite_non_negative_glucose(
    carbs: list[float], rates: list[float]
) -> None:
    p = GlucosePatients.from_names(["adolescent#002", "child#010"])
    for c, r in zip(carbs, rates, strict=True):
        bg = p.step(carbs_g=c, insulin_u_per_min=r, minutes=20)
        assert np.isfinite(bg).all()
        assert (bg >= 0.0).all()
        assert (p.carbs_waiting_g >= 0.0).all()


def test_state_is_read_only_and_settable_whole() -> None:
    p = GlucosePatients.from_names(["adult#003"])
    with pytest.raises(ValueError, match="read-only"):
        p.state[0, State.GP] = 1.0
    new = p.state.copy()
    new[0, State.GP] *= 1.2
    p.state = new
    assert p.bg_mg_dl[0] == pytest.approx(1.2 * p.parameters.basal_glucose_mg_dl[0])
    p.reset()
    assert p.bg_mg_dl[0] == pytest.approx(p.parameters.basal_glucose_mg_dl[0])
    assert p.t_min == 0
    with pytest.raises(InputError, match="shape"):
        p.state = np.zeros((2, 13))
    with pytest.raises(InputError, match="finite"):
        p.state = np.full((1, 13), np.nan)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"carbs_g": -1.0}, r"carbs_g\[0\] -1.0: must be finite and not negative"),
        ({"insulin_u_per_min": [0.1, 0.2, 0.3]}, "insulin_u_per_min.*shape"),
        ({"insulin_u_per_min": float("nan")}, r"insulin_u_per_min\[0\] nan.*finite"),
        ({"minutes": 0}, "minutes"),
    ],
)
def test_bad_step_input(kwargs: dict[str, object], match: str) -> None:
    p = GlucosePatients.from_names(["adult#001", "adult#002"])
    with pytest.raises(InputError, match=match):
        p.step(**kwargs)  # type: ignore[arg-type]


def test_bad_simulate_input() -> None:
    p = GlucosePatients.from_names(["adult#001", "adult#002"])
    with pytest.raises(InputError, match=r"carbs_g_per_min.*broadcast to \(2, 10\)"):
        simulate(p, 10, np.zeros((3, 10)), 0.0)
    insulin = np.zeros(10)
    insulin[7] = -0.5
    with pytest.raises(InputError, match=r"insulin_u_per_min\[0, 7\] -0.5"):
        simulate(p, 10, 0.0, insulin)
    with pytest.raises(InputError, match="subcutaneous_out"):
        simulate(p, 10, 0.0, 0.0, subcutaneous_out=np.empty((2, 10)))
    with pytest.raises(InputError, match="substeps"):
        GlucosePatients.from_names(["adult#001"], substeps=0)


def test_substeps_converge() -> None:
    carbs = np.r_[np.zeros(30), 70.0, np.zeros(209)]
    one = simulate(GlucosePatients.from_names(["adult#005"]), 240, carbs, 0.02)
    four = simulate(GlucosePatients.from_names(["adult#005"], substeps=4), 240, carbs, 0.02)
    assert np.abs(one - four).max() < 0.05


def test_documentation_example_runs() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "glucose-model.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})
