"""Drug effects: Eleveld BIS, heparin aPTT, opioid ventilatory depression and the SpO2 and
EtCO2 inputs derived from it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from openinfusion.errors import InputError
from openinfusion.physiology.pk import (
    REMIFENTANIL_VENTILATION,
    Covariates,
    EleveldBisParameters,
    Schedule,
    arterial_po2_mmhg,
    bis_eleveld,
    eleveld_ce50_ug_ml,
    eleveld_ce_for_bis,
    etco2_mmhg,
    heparin_aptt_s,
    remifentanil_minto,
    sigmoid_emax,
    simulate,
    simulate_ventilation,
    spo2_percent,
)


def test_bis_at_ce50_is_half_of_baseline() -> None:
    assert eleveld_ce50_ug_ml(35.0) == pytest.approx(3.08)
    assert eleveld_ce50_ug_ml(75.0) == pytest.approx(3.08 * np.exp(-0.00635 * 40))
    assert bis_eleveld(3.08, 35.0) == pytest.approx(46.5)
    assert bis_eleveld(0.0, 35.0) == pytest.approx(93.0)


def test_bis_uses_each_slope_on_its_side_of_ce50() -> None:
    below = bis_eleveld(1.54, 35.0)
    above = bis_eleveld(6.16, 35.0)
    assert below == pytest.approx(93.0 * (1 - 0.5**1.47 / (0.5**1.47 + 1)))
    assert above == pytest.approx(93.0 * (1 - 2**1.89 / (2**1.89 + 1)))
    swapped = EleveldBisParameters(gamma_below=1.89, gamma_above=1.47)
    assert bis_eleveld(1.54, 35.0, swapped) != pytest.approx(below)


def test_bis_is_vectorised_per_patient_and_inverts() -> None:
    ce = np.linspace(0.0, 8.0, 81)[None, :].repeat(3, axis=0)
    ages = np.array([20.0, 50.0, 80.0])
    bis = bis_eleveld(ce, ages)
    assert bis.shape == (3, 81)
    assert np.all(np.diff(bis, axis=1) < 0)
    assert np.all(bis[2, 1:] < bis[0, 1:])  # older patients are more sensitive
    for i, age in enumerate(ages):
        np.testing.assert_allclose(bis[i], bis_eleveld(ce[i], age))
    back = eleveld_ce_for_bis(bis[:, 1:], ages)
    np.testing.assert_allclose(back, ce[:, 1:], rtol=1e-9)


def test_sigmoid_emax_and_aptt() -> None:
    assert sigmoid_emax(2.0, 100.0, -100.0, 2.0, 3.0) == pytest.approx(50.0)
    assert heparin_aptt_s(0.0) == pytest.approx(35.6)
    np.testing.assert_allclose(heparin_aptt_s([100.0, 200.0]), [35.6 + 67.0, 35.6 + 134.0])


def test_ventilation_rests_at_baseline_without_opioid() -> None:
    t = np.arange(0.0, 3600.1, 10.0)
    vent = simulate_ventilation(t, np.zeros((2, t.size)))
    np.testing.assert_allclose(vent.paco2_mmhg, 42.4)
    np.testing.assert_allclose(vent.ve_l_min, 7.06)


def test_constant_opioid_reaches_the_analytic_steady_state() -> None:
    """(1 - E)(P/P0)^F P = P0  =>  P = P0 (1 - E)^(-1/(F+1)); VE = VE0 P0/P."""
    p = REMIFENTANIL_VENTILATION
    t = np.arange(0.0, 4 * 3600.1, 30.0)
    ce = np.full((1, t.size), p.c50)
    vent = simulate_ventilation(t, ce)
    paco2 = p.paco2_baseline_mmhg * 0.5 ** (-1 / (p.feedback_gain + 1))
    assert vent.paco2_mmhg[0, -1] == pytest.approx(paco2, rel=1e-6)
    assert vent.ve_l_min[0, -1] == pytest.approx(7.06 * 42.4 / paco2, rel=1e-6)


def test_apnoea_raises_paco2_by_kel_times_baseline_per_minute() -> None:
    t = np.arange(0.0, 61.0, 1.0)
    vent = simulate_ventilation(t, np.full((1, t.size), 1e6))
    assert vent.ve_l_min[0, 1] == pytest.approx(0.0, abs=1e-6)
    rise = vent.paco2_mmhg[0, -1] - vent.paco2_mmhg[0, 0]
    assert rise == pytest.approx(0.08 * 42.4, rel=1e-6)


def test_ventilation_matches_an_ode_integrator_after_a_remifentanil_bolus() -> None:
    model = remifentanil_minto(Covariates(age_years=40, weight_kg=70, height_cm=170, male=True))
    t = np.arange(0.0, 1800.1, 10.0)
    ce = simulate(model, Schedule.build(boluses=[(0, 70.0)]), t).ce  # 1 µg/kg
    vent = simulate_ventilation(t, ce)
    p = REMIFENTANIL_VENTILATION

    def rhs(tt: float, x: np.ndarray) -> list[float]:
        c = np.interp(tt, t, ce[0])
        e = c**p.gamma / (c**p.gamma + p.c50**p.gamma)
        drive = (1 - e) * (x[1] / p.paco2_baseline_mmhg) ** p.feedback_gain
        return [
            p.kel_per_min / 60 * (p.paco2_baseline_mmhg - drive * x[0]),
            p.ke0_co2_per_min / 60 * (x[0] - x[1]),
        ]

    # DOP853 interval by interval, so the kinks of the interpolated Ce fall on step edges.
    state, ref = np.array([42.4, 42.4]), [42.4]
    for a, b in itertools.pairwise(t):
        state = solve_ivp(rhs, (a, b), state, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
        ref.append(state[0])
    np.testing.assert_allclose(vent.paco2_mmhg[0], ref, rtol=5e-6)
    assert vent.paco2_mmhg[0].max() > 45.0  # a 1 µg/kg bolus causes clinically visible hypercarbia
    assert vent.ve_l_min[0].min() < 0.5 * 7.06


def test_gas_exchange_inputs_for_sensors() -> None:
    assert etco2_mmhg(44.0) == pytest.approx(40.0)
    assert arterial_po2_mmhg(40.0) == pytest.approx(0.21 * 713 - 50 - 10)
    assert arterial_po2_mmhg(40.0, fio2=1.0, aa_gradient_mmhg=0) == pytest.approx(713 - 50)
    # Severinghaus 1979: P50 about 26.8 mmHg; 97.75 % at 100 mmHg; 90.58 % at 60 mmHg.
    assert spo2_percent(26.86) == pytest.approx(50.0, abs=0.1)
    np.testing.assert_allclose(spo2_percent([100.0, 60.0, 0.0]), [97.75, 90.58, 0.0], atol=0.01)
    # Opioid hypercarbia on room air lowers SpO2.
    assert spo2_percent(arterial_po2_mmhg(70.0)) < spo2_percent(arterial_po2_mmhg(40.0)) - 5
    with pytest.raises(InputError):
        arterial_po2_mmhg(40.0, fio2=1.5)
