"""The exact compartment solver: against an ODE integrator, the matrix exponential, mass
balance, per-patient loops and its own chained runs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from openinfusion.errors import InputError
from openinfusion.physiology.pk import (
    PkModel,
    PkState,
    Schedule,
    ke0_for_time_to_peak,
    simulate,
    time_to_peak_effect_min,
)

# Schnider reference patient (40 y, 70 kg, 170 cm, male): PKPD_REFERENCE §1.3.
SCHNIDER = PkModel(4.27, 0.38364, 0.37518, 0.06680, 0.19578, 0.003513, 0.456)


def _ode_reference(
    model: PkModel, schedule: Schedule, grid: np.ndarray, patient: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cp and Ce by DOP853 (rtol 1e-13) between schedule events, boluses added at events."""
    v1 = model.v1_l[patient]
    k = [
        getattr(model, f"{n}_per_min")[patient] / 60.0 for n in ("k10", "k12", "k21", "k13", "k31")
    ]
    k10, k12, k21, k13, k31 = k
    ke0 = None if model.ke0_per_min is None else model.ke0_per_min[patient] / 60.0

    def rhs(_t: float, x: np.ndarray, rate: float) -> list[float]:
        a1, a2, a3, ce = x
        return [
            rate - (k10 + k12 + k13) * a1 + k21 * a2 + k31 * a3,
            k12 * a1 - k21 * a2,
            k13 * a1 - k31 * a3,
            0.0 if ke0 is None else ke0 * (a1 / v1 - ce),
        ]

    rates = (
        schedule.rate_per_s if schedule.rate_per_s.ndim == 1 else schedule.rate_per_s[:, patient]
    )
    doses = (
        schedule.bolus_amount
        if schedule.bolus_amount.ndim == 1
        else schedule.bolus_amount[:, patient]
    )
    events = np.unique(np.concatenate(([0.0], schedule.rate_start_s, schedule.bolus_at_s)))
    events = events[events <= grid[-1]]
    state = np.zeros(4)
    cp = np.empty(grid.size)
    ce = np.empty(grid.size)
    for j, start in enumerate(events):
        stop = events[j + 1] if j + 1 < events.size else grid[-1]
        state[0] += doses[schedule.bolus_at_s == start].sum()
        idx = int(np.searchsorted(schedule.rate_start_s, start, side="right")) - 1
        rate = rates[idx] if idx >= 0 else 0.0
        last = j + 1 == events.size
        mask = (grid >= start) & ((grid <= stop) if last else (grid < stop))
        if stop > start:
            sol = solve_ivp(
                rhs,
                (start, stop),
                state,
                args=(rate,),
                method="DOP853",
                rtol=1e-13,
                atol=1e-15,
                dense_output=True,
            )
            values = sol.sol(grid[mask]) if mask.any() else np.zeros((4, 0))
            state = sol.sol(stop)
        else:
            values = np.repeat(state[:, None], mask.sum(), axis=1)
        cp[mask] = values[0] / v1
        ce[mask] = values[0] / v1 if ke0 is None else values[3]
    return cp, ce


def _random_model(rng: np.random.Generator, compartments: int, effect: bool) -> PkModel:
    k = rng.uniform(0.005, 0.6, size=5)
    k[4] = rng.uniform(0.001, 0.02)
    if compartments < 3:
        k[3:] = 0.0
    if compartments < 2:
        k[1:3] = 0.0
    return PkModel(rng.uniform(2, 20), *k, rng.uniform(0.05, 2.0) if effect else None)


def _random_schedule(rng: np.random.Generator, end_s: float) -> Schedule:
    infusions = []
    for _ in range(rng.integers(1, 5)):
        a = rng.uniform(0, end_s * 0.9)
        infusions.append((a, a + rng.uniform(1, end_s / 3), rng.uniform(0, 0.5)))
    boluses = [(rng.uniform(0, end_s), rng.uniform(0, 100)) for _ in range(rng.integers(0, 4))]
    return Schedule.build(infusions=infusions, boluses=boluses)


@pytest.mark.parametrize("compartments", [1, 2, 3])
@pytest.mark.parametrize("effect", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_matches_ode_integration_on_random_schedules(
    compartments: int, effect: bool, seed: int
) -> None:
    rng = np.random.default_rng(1000 * compartments + 10 * seed + effect)
    model = _random_model(rng, compartments, effect)
    schedule = _random_schedule(rng, 7200.0)
    grid = np.sort(np.concatenate((np.arange(0.0, 7200.1, 37.0), schedule.bolus_at_s)))
    result = simulate(model, schedule, grid)
    cp, ce = _ode_reference(model, schedule, grid)
    assert model.compartments == compartments
    scale_cp = max(np.abs(cp).max(), 1e-12)
    scale_ce = max(np.abs(ce).max(), 1e-12)
    np.testing.assert_allclose(result.cp[0], cp, rtol=1e-8, atol=1e-10 * scale_cp)
    np.testing.assert_allclose(result.ce[0], ce, rtol=1e-8, atol=1e-10 * scale_ce)


def test_ke0_equal_to_a_disposition_exponent_is_not_a_special_case() -> None:
    """Coinciding exponents make Bailey-Shafer coefficients divide by zero; not here."""
    base = PkModel(5.0, 0.2, 0.1, 0.05)
    lam = -np.linalg.eigvals(np.array([[-0.3, 0.05], [0.1, -0.05]]))
    for ke0 in (lam[0], lam[1], lam[1] * (1 + 1e-9), 0.2):
        model = base.with_ke0(ke0)
        schedule = Schedule.build(infusions=[(0, 600, 0.3)], boluses=[(0, 20.0)])
        grid = np.linspace(0, 3600, 61)
        cp, ce = _ode_reference(model, schedule, grid)
        result = simulate(model, schedule, grid)
        np.testing.assert_allclose(result.ce[0], ce, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.cp[0], cp, rtol=1e-9, atol=1e-12)


def test_one_step_equals_the_matrix_exponential() -> None:
    """Zero-order-hold discretisation via expm of the augmented matrix [[M, b], [0, 0]]."""
    m = SCHNIDER
    k10, k12, k21, k13, k31 = (
        getattr(m, f"{n}_per_min")[0] for n in ("k10", "k12", "k21", "k13", "k31")
    )
    ke0, v1 = m.ke0_per_min[0] if m.ke0_per_min is not None else 0.0, m.v1_l[0]
    mat = np.zeros((5, 5))
    mat[:3, :3] = [[-(k10 + k12 + k13), k21, k31], [k12, -k21, 0], [k13, 0, -k31]]
    mat[3, 0], mat[3, 3] = ke0 / v1, -ke0
    mat[0, 4] = 1.0  # rate per minute enters A1
    rate_mg_s = 0.2
    for dt_min in (1 / 60, 1.0, 37.3, 1440.0):
        z = expm(mat * dt_min) @ np.array([50.0, 10.0, 5.0, 2.0, rate_mg_s * 60])
        start = PkState(0.0, np.array([[50.0, 10.0, 5.0]]), np.array([2.0]))
        res = simulate(m, Schedule.build(infusions=[(0, 1e9, rate_mg_s)]), [dt_min * 60], start)
        np.testing.assert_allclose(res.cp[0, 0], z[0] / v1, rtol=1e-11)
        np.testing.assert_allclose(res.ce[0, 0], z[3], rtol=1e-11)
        np.testing.assert_allclose(res.final.amounts[0], z[:3], rtol=1e-10, atol=1e-9)


def test_bolus_at_a_grid_point_is_included_there() -> None:
    result = simulate(SCHNIDER, Schedule.build(boluses=[(60.0, 200.0)]), [0.0, 59.999, 60.0])
    assert result.cp[0, 0] == 0.0
    assert result.cp[0, 1] == 0.0
    assert result.cp[0, 2] == pytest.approx(200.0 / 4.27)
    # PyTCI test patient (Schnider 40 y/70 kg/170 cm M, 200 mg): Cp(0) 46.84 µg/mL.
    assert result.cp[0, 2] == pytest.approx(46.84, abs=0.005)


def test_mass_balance_over_a_day() -> None:
    """Drug given = drug in the body + drug eliminated (∫ CL·Cp dt, trapezoid on 1-s grid)."""
    schedule = Schedule.build(
        infusions=[(0, 3600, 0.19), (7200, 7800, 0.5)], boluses=[(0, 140.0), (5000.5, 30.0)]
    )
    grid = np.arange(0.0, 86400.0 + 1, 1.0)
    result = simulate(SCHNIDER, schedule, grid)
    eliminated = np.trapezoid(result.cp[0] * SCHNIDER.cl_l_min[0] / 60.0, grid)
    in_body = result.final.amounts[0].sum()
    given = schedule.total_amount(86400.0)[0]
    assert given == pytest.approx(140 + 30 + 0.19 * 3600 + 0.5 * 600)
    assert in_body + eliminated == pytest.approx(given, rel=1e-6)


def test_vectorised_equals_per_patient_loop() -> None:
    rng = np.random.default_rng(7)
    n = 25
    model = PkModel(
        rng.uniform(3, 20, n),
        rng.uniform(0.05, 0.5, n),
        rng.uniform(0.05, 0.5, n),
        rng.uniform(0.02, 0.2, n),
        np.where(np.arange(n) % 3 == 0, 0.0, rng.uniform(0.01, 0.2, n)),
        np.where(np.arange(n) % 3 == 0, 0.0, rng.uniform(0.001, 0.01, n)),
        rng.uniform(0.1, 1.5, n),
    )
    per_patient_rate = rng.uniform(0.05, 0.3, n)
    schedule = Schedule.build(
        infusions=[(0, 1800, per_patient_rate), (900, 2400, 0.1)],
        boluses=[(0, rng.uniform(10, 100, n)), (1234.5, 20.0)],
    )
    grid = np.arange(0.0, 5400.1, 15.0)
    together = simulate(model, schedule, grid)
    for i in range(n):
        alone_schedule = Schedule.build(
            infusions=[(0, 1800, per_patient_rate[i]), (900, 2400, 0.1)],
            boluses=[(0, schedule.bolus_amount[0, i]), (1234.5, 20.0)],
        )
        alone = simulate(model.take(i), alone_schedule, grid)
        np.testing.assert_allclose(together.cp[i], alone.cp[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(together.ce[i], alone.ce[0], rtol=1e-12, atol=1e-14)


def test_chained_runs_equal_one_run() -> None:
    schedule = Schedule.build(infusions=[(0, 3000, 0.2)], boluses=[(0, 100.0), (4000, 50.0)])
    whole = simulate(SCHNIDER, schedule, np.arange(0.0, 7201, 60.0))
    first = simulate(SCHNIDER, schedule, np.arange(0.0, 3601, 60.0))
    later = Schedule.build(boluses=[(4000, 50.0)])
    second = simulate(SCHNIDER, later, np.arange(3600.0, 7201, 60.0), first.final)
    np.testing.assert_allclose(whole.cp[0, 60:], second.cp[0], rtol=1e-12)
    np.testing.assert_allclose(whole.ce[0, 60:], second.ce[0], rtol=1e-12)


def test_a_day_for_a_thousand_patients_is_a_handful_of_array_operations() -> None:
    n = 1000
    model = PkModel(
        np.full(n, 4.27), np.linspace(0.3, 0.45, n), 0.37518, 0.0668, 0.19578, 0.003513, 0.456
    )
    schedule = Schedule.build(
        infusions=[(0, 3600, 0.19), (3600, 43200, 0.08), (43200, 86400, 0.05)],
        boluses=[(0, 140.0)],
    )
    grid = np.arange(0.0, 86400.0 + 1, 10.0)
    start = time.perf_counter()
    result = simulate(model, schedule, grid)
    elapsed = time.perf_counter() - start
    assert result.cp.shape == (n, grid.size)
    assert np.all(np.isfinite(result.ce))
    assert elapsed < 10.0  # 8.6 million patient-points (~1.5 s here); scalar stepping: minutes


def test_time_to_peak_and_its_inverse() -> None:
    # PKPD_REFERENCE §1.9: Schnider reference patient, ke0 0.456 1/min -> 1.52 min.
    assert time_to_peak_effect_min(SCHNIDER)[0] == pytest.approx(1.52, abs=0.005)
    ke0 = ke0_for_time_to_peak(SCHNIDER, 1.6)
    assert time_to_peak_effect_min(SCHNIDER.with_ke0(ke0))[0] == pytest.approx(1.6, abs=1e-9)
    with pytest.raises(InputError, match="direct-effect"):
        time_to_peak_effect_min(SCHNIDER.with_ke0(None))


def test_direct_effect_model_has_ce_equal_to_cp() -> None:
    model = PkModel.from_clearances(v1_l=10.0, cl_l_min=0.1)
    result = simulate(model, Schedule.build(boluses=[(0, 100.0)]), [0.0, 600.0])
    np.testing.assert_array_equal(result.ce, result.cp)
    assert result.cp[0, 1] == pytest.approx(10.0 * np.exp(-0.01 * 10))
    assert not model.has_effect_site and model.compartments == 1


def test_clearance_form_round_trips() -> None:
    m = PkModel.from_clearances(4.27, 1.63813, 23.983, 1.602, 238.0, 0.836, 0.456)
    assert m.k10_per_min[0] == pytest.approx(0.38364, abs=5e-6)
    assert m.v2_l[0] == pytest.approx(23.983)
    assert m.v3_l[0] == pytest.approx(238.0)
    assert m.q3_l_min[0] == pytest.approx(0.836)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"v1_l": 0.0, "k10_per_min": 0.1}, "v1_l"),
        ({"v1_l": 5.0, "k10_per_min": -0.1}, "k10_per_min"),
        ({"v1_l": 5.0, "k10_per_min": 0.1, "k12_per_min": 0.1}, "k21_per_min"),
        ({"v1_l": 5.0, "k10_per_min": float("nan")}, "k10_per_min"),
        ({"v1_l": 5.0, "k10_per_min": 0.1, "ke0_per_min": 0.0}, "ke0_per_min"),
        ({"v1_l": [5.0, 6.0], "k10_per_min": [0.1, 0.2, 0.3]}, "PkModel"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        PkModel(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_schedules_and_grids_are_named() -> None:
    with pytest.raises(InputError, match="start < stop"):
        Schedule.build(infusions=[(60, 30, 1.0)])
    with pytest.raises(InputError) as err:
        Schedule.build(boluses=[(0, -5.0)])
    assert err.value.field == "bolus_amount[0]"
    with pytest.raises(InputError) as err:
        simulate(SCHNIDER, Schedule.build(), [10.0, 5.0])
    assert err.value.field == "t_grid_s"
    start = PkState(100.0, np.zeros((1, 3)), np.zeros(1))
    with pytest.raises(InputError, match="before the simulation start"):
        simulate(SCHNIDER, Schedule.build(boluses=[(50, 1.0)]), [200.0], start)
