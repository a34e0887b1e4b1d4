"""TCI planner: oracle first steps, replay through the exact PK engine, safety invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.control import Site, TciController, decrement_time_s, plan_tci
from openinfusion.errors import InputError
from openinfusion.physiology.pk import (
    Covariates,
    ModelOptions,
    PkModel,
    Schedule,
    build_model,
    simulate,
)

# PKPD_REFERENCE §2.3-2.4 reference patient: 40 y, 70 kg, 170 cm, male.
REF = Covariates(age_years=40, weight_kg=70, height_cm=170, male=True)
MODELS = {"marsh": False, "schnider": False, "eleveld": True}  # name: concomitant opioid


def propofol(name: str, cov: Covariates = REF) -> PkModel:
    _, model = build_model("propofol", name, cov, ModelOptions(opioid=MODELS.get(name, False)))
    return model


# First 10-s step at 4 µg/mL with no pump limit (PKPD_REFERENCE §2.3, §2.4; consensus of
# refimpl, PyTCI-exact and R tci for the columns without known bugs) and 1-h plasma totals.
@pytest.mark.parametrize(
    ("name", "plasma_mg", "effect_mg", "total_1h_mg"),
    [
        ("marsh", 65.30, 174.5, 789.6),
        ("schnider", 18.47, 69.5, 684.6),
        ("eleveld", 26.50, 165.7, 654.6),
    ],
)
def test_first_step_matches_reference(
    name: str, plasma_mg: float, effect_mg: float, total_1h_mg: float
) -> None:
    controller = TciController(propofol(name))
    plasma = controller.plan(4.0, 3600, "plasma")
    effect = controller.plan(4.0, 600, "effect")
    assert plasma.rate_per_s[0] * 10 == pytest.approx(plasma_mg, abs=0.006)
    assert effect.rate_per_s[0] * 10 == pytest.approx(effect_mg, abs=0.06)
    assert plasma.total_amount == pytest.approx(total_1h_mg, abs=0.06)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("site", ["plasma", "effect"])
def test_replay_through_engine_matches_prediction(name: str, site: str) -> None:
    model = propofol(name)
    targets = [(0.0, 4.0), (900.0, 6.0), (1805.0, 2.5), (2700.0, 3.0)]
    plan = plan_tci(model, targets, 3600, site, max_rate_per_s=12000 / 3600)
    exact = simulate(model, plan.schedule(), np.arange(0, 3601, 1.0))
    assert np.allclose(exact.cp[0, ::10], plan.cp, rtol=1e-3, atol=1e-9)
    assert np.allclose(exact.ce[0, ::10], plan.ce, rtol=1e-3, atol=1e-9)
    assert np.max(np.abs(exact.cp[0, ::10] - plan.cp)) < 1e-9
    assert np.allclose(exact.final.amounts, plan.final.amounts, rtol=1e-9)
    # The change at 1805 s applies from the next update, 1810 s.
    assert plan.target[180] == 6.0 and plan.target[181] == 2.5


@pytest.mark.parametrize("name", list(MODELS))
def test_plasma_target_reached_each_step(name: str) -> None:
    plan = plan_tci(propofol(name), 3.0, 3600, "plasma")
    assert np.allclose(plan.cp[1:], 3.0, rtol=1e-9)
    assert plan.rate_per_s[-1] == 0.0


@pytest.mark.parametrize("name", list(MODELS))
def test_effect_target_reached_without_overshoot(name: str) -> None:
    model = propofol(name)
    plan = plan_tci(model, 4.0, 3600, "effect", max_rate_per_s=12000 / 3600)
    exact = simulate(model, plan.schedule(), np.arange(0, 3601, 1.0))
    assert exact.ce.max() <= 4.0 * 1.001
    assert abs(plan.ce[-1] - 4.0) < 1e-3  # held at target
    first = int(np.argmax(plan.ce >= 4.0 * 0.99))
    assert 0 < first * 10 < 10 * 60  # within 10 minutes
    # Maintenance is plasma targeting: no on/off chattering after the target is reached.
    assert np.count_nonzero(plan.rate_per_s[first + 30 : -1] == 0) == 0


def test_effect_faster_than_plasma() -> None:
    model = propofol("schnider")
    plasma = plan_tci(model, 4.0, 900, "plasma")
    effect = plan_tci(model, 4.0, 900, "effect")
    reach_p = int(np.argmax(plasma.ce >= 3.96))
    reach_e = int(np.argmax(effect.ce >= 3.96))
    assert reach_e < reach_p


def test_effect_rate_is_the_brute_force_shafer_gregg_rate() -> None:
    """First-step rate equals a brute-force search over a 0.1-s look-ahead grid."""
    model = propofol("marsh")
    controller = TciController(model)
    rate = controller.plan(4.0, 10, "effect").rate_per_s[0]
    tau = np.arange(0.1, 1200, 0.1)
    unit = simulate(model, Schedule.build(infusions=[(0, 10, 1.0)]), tau).ce[0]
    assert rate == pytest.approx(float(np.min(4.0 / unit)), rel=1e-5)
    peak = simulate(model, Schedule.build(infusions=[(0, 10, rate)]), tau).ce.max()
    assert peak == pytest.approx(4.0, rel=1e-6)


def test_decreasing_target_stops_until_reached() -> None:
    model = propofol("eleveld")
    plan = plan_tci(model, [(0.0, 5.0), (600.0, 2.0)], 1800, "plasma")
    stop = int(np.argmax(plan.cp[61:] <= 2.0 + 1e-9)) + 61
    assert np.all(plan.rate_per_s[60 : stop - 1] == 0.0)
    assert plan.rate_per_s[stop] > 0
    expected = decrement_time_s(model, _state_at(model, plan, 600.0), 2.0, "plasma")
    assert (stop - 60) * 10 == pytest.approx(math.ceil(expected / 10) * 10)


def _state_at(model: PkModel, plan, t_s: float):  # type: ignore[no-untyped-def]
    return simulate(model, plan.schedule(), np.array([t_s])).final


@pytest.mark.parametrize("site", ["plasma", "effect"])
@pytest.mark.parametrize("level", [3.0, 1.5, 0.5])
def test_decrement_time_vs_brute_force(site: str, level: float) -> None:
    model = propofol("schnider")
    plan = plan_tci(model, 4.0, 3600, "effect")
    got = decrement_time_s(model, plan.final, level, site)
    grid = plan.final.t_s + np.arange(0, 6 * 3600, 0.5)
    run = simulate(model, Schedule.build(), grid, initial=plan.final)
    conc = run.cp[0] if site == "plasma" else run.ce[0]
    last_above = grid[np.flatnonzero(conc > level)[-1]] - plan.final.t_s
    assert last_above <= got <= last_above + 0.5


def test_decrement_time_edges() -> None:
    model = propofol("schnider")
    plan = plan_tci(model, 4.0, 600, "plasma")
    assert decrement_time_s(model, plan.final, 10.0, "plasma") == 0.0
    assert decrement_time_s(model, plan.final, 1e-9, "plasma", horizon_s=60) == math.inf
    # Ce still rises just after a plasma bolus: the last crossing counts.
    bolus = simulate(model, Schedule.build(boluses=[(0, 100.0)]), np.array([0.0])).final
    t = decrement_time_s(model, bolus, 0.5, "effect")
    run = simulate(model, Schedule.build(), np.arange(0, 7200, 1.0), initial=bolus)
    assert t == pytest.approx(np.flatnonzero(run.ce[0] > 0.5)[-1], abs=1.0)


@settings(max_examples=25, deadline=None)
@given(
    age=st.floats(18, 85),
    weight=st.floats(45, 130),
    height=st.floats(150, 195),
    male=st.booleans(),
    name=st.sampled_from(list(MODELS)),
    target=st.floats(0.5, 8.0),
    max_ml_h=st.floats(100, 1200),
    site=st.sampled_from(["plasma", "effect"]),
)
def test_invariants(
    age: float,
    weight: float,
    height: float,
    male: bool,
    name: str,
    target: float,
    max_ml_h: float,
    site: str,
) -> None:
    """Rates never negative nor above the pump limit; Ce never above target (+0.1 %)."""
    cov = Covariates(age_years=age, weight_kg=weight, height_cm=height, male=male)
    try:
        model = propofol(name, cov)
    except InputError:
        return  # outside the model's validity range
    max_rate = max_ml_h * 10.0 / 3600.0  # 10 mg/mL
    plan = plan_tci(model, [(0, target), (1200, target * 1.5)], 2400, site, 10.0, max_rate)
    assert np.all(plan.rate_per_s >= 0)
    assert np.all(plan.rate_per_s <= max_rate * (1 + 1e-12))
    exact = simulate(model, plan.schedule(), np.arange(0, 2401, 2.0))
    if site == "effect":
        assert exact.ce[0, :600].max() <= target * 1.001
        assert exact.ce[0].max() <= target * 1.5 * 1.001
    else:
        assert exact.cp[0, :600].max() <= target * 1.001
    assert np.allclose(exact.cp[0, ::5], plan.cp, rtol=1e-3, atol=1e-9)


def test_remifentanil_effect_site() -> None:
    _, model = build_model("remifentanil", "minto", REF)
    plan = plan_tci(model, 4.0, 1800, "effect")  # ng/mL = µg/L, amounts in µg
    exact = simulate(model, plan.schedule(), np.arange(0, 1801, 1.0))
    assert exact.ce.max() <= 4.0 * 1.001
    assert abs(plan.ce[-1] - 4.0) < 1e-3


def test_bad_input_names_field() -> None:
    model = propofol("marsh")
    with pytest.raises(InputError, match="duration_s"):
        plan_tci(model, 4.0, 15, "plasma")
    with pytest.raises(InputError, match=r"targets\[0\]\.target"):
        plan_tci(model, -1.0, 60, "plasma")
    with pytest.raises(InputError, match="site"):
        plan_tci(model, 4.0, 60, "brain")
    with pytest.raises(InputError, match="first target"):
        plan_tci(model, [(10.0, 4.0)], 60, "plasma")
    with pytest.raises(InputError, match="max_rate_per_s"):
        TciController(model, max_rate_per_s=0.0)
    direct = PkModel(10.0, 0.1)
    with pytest.raises(InputError, match="no effect site"):
        plan_tci(direct, 4.0, 60, Site.EFFECT)
    assert plan_tci(direct, 4.0, 60, Site.PLASMA).cp[-1] == pytest.approx(4.0)


def test_benchmark_script_runs() -> None:
    """benchmarks/tci.py reports its figures and agrees with the naive planner."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "tci.py"
    args = [sys.executable, str(script), "--repeats", "2", "--baseline-minutes", "1", "--json"]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    assert {"ms_per_1h_effect_plan", "baseline_ms_per_1h_plan", "speedup_vs_baseline"} <= set(out)
    assert out["max_abs_rate_difference_mg_h"] < 1.0
