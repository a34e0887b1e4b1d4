"""PID with insulin feedback, linear MPC and the trial adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openinfusion.control.aid import (
    Command,
    MpcController,
    Observation,
    PidIfbController,
    Profile,
    SafetySupervisor,
    mpc_controller,
    pid_controller,
)
from openinfusion.control.aid.base import AidController
from openinfusion.sim.glucose_scenario import GlucoseScenario
from openinfusion.sim.glucose_trial import register_controller, run_trial

ROOT = Path(__file__).resolve().parents[2]


def profile(n: int = 2) -> Profile:
    return Profile(
        basal_u_h=np.full(n, 1.0),
        isf_mg_dl_u=np.full(n, 50.0),
        carb_ratio_g_u=np.full(n, 10.0),
        target_mg_dl=np.full(n, 120.0),
        max_basal_u_h=np.full(n, 4.0),
        max_iob_u=np.full(n, 5.0),
        max_daily_basal_u_h=np.full(n, 1.0),
    )


def obs(bg: list[float], t: float = 1000.0, carbs: float = 0.0) -> Observation:
    """Patients at constant CGM ``bg`` (with a small wiggle so it is not flat), on basal."""
    n = len(bg)
    times = t - 5.0 * np.arange(12)[::-1]
    wiggle = np.tile([0.0, 1.0], 6)[None, :]
    cgm = np.array(bg)[:, None] + wiggle - wiggle[:, -1:]
    return Observation(
        t_min=t,
        cgm_t_min=times,
        cgm_mg_dl=cgm,
        insulin_t_min=np.arange(t - 300, t),
        insulin_u=np.full((n, 300), 1.0 / 60.0),
        carbs_t_min=np.array([t]) if carbs else np.zeros(0),
        carbs_g=np.full((n, 1), carbs) if carbs else np.zeros((n, 0)),
        profile=profile(n),
    )


def test_pid_direction_and_anti_windup() -> None:
    pid = PidIfbController(np.full(2, 40.0))
    out = pid.step(obs([200.0, 100.0]))
    assert out.temp_basal_u_h[0] > 1.0  # high: more than basal
    assert out.temp_basal_u_h[1] < 1.0  # below target: less than basal
    # long saturation: the integral stays within [0, max safe basal]
    for k in range(200):
        pid.step(obs([400.0, 60.0], t=1005.0 + 5 * k))
    assert pid._integral_u_h is not None
    assert pid._integral_u_h.min() >= 0.0 and pid._integral_u_h.max() <= 3.0 + 1e-9


def test_pid_gain_scales_with_tdi() -> None:
    small, big = PidIfbController(np.full(2, 20.0)), PidIfbController(np.full(2, 60.0))
    a = small.propose(obs([180.0, 180.0])).temp_basal_u_h[0]
    b = big.propose(obs([180.0, 180.0])).temp_basal_u_h[0]
    assert b - 1.0 == pytest.approx(3 * (a - 1.0), rel=1e-6)


def test_pid_meal_bolus_is_carbs_over_cr() -> None:
    out = PidIfbController(np.full(2, 40.0)).step(obs([150.0, 150.0], carbs=30.0))
    assert out.bolus_u() == pytest.approx([3.0, 3.0])


@pytest.mark.parametrize("solver", ["clip", "qp"])
def test_mpc_direction_and_bounds(solver: str) -> None:
    mpc = MpcController(solver=solver)
    raw = mpc.propose(obs([250.0, 90.0]))
    assert raw.temp_basal_u_h[0] > 1.0
    assert raw.temp_basal_u_h[1] < 1.0
    assert np.all((raw.temp_basal_u_h >= 0) & (raw.temp_basal_u_h <= 4.0))


def test_mpc_qp_equals_clip_when_unconstrained() -> None:
    o = obs([135.0, 128.0])
    a = MpcController(solver="clip").plan_u_h(o, np.zeros(2))
    b = MpcController(solver="qp").plan_u_h(o, np.zeros(2))
    assert np.allclose(a, b, atol=1e-6)


def test_controllers_cannot_bypass_the_supervisor() -> None:
    class Greedy(AidController):
        def propose(self, obs: Observation) -> Command:
            return Command(np.full(obs.profile.n, 50.0), 600.0, np.full(obs.profile.n, 20.0))

    out = Greedy(SafetySupervisor()).step(obs([70.0, 300.0]))
    assert out.temp_basal_u_h[0] == 0.0 and out.bolus_u()[0] == 0.0
    assert out.temp_basal_u_h[1] <= 3.0 and out.bolus_u()[1] <= 5.0
    assert out.duration_min == 30.0


def test_trial_closed_loop_beats_open_loop_without_boluses() -> None:
    register_controller("pid", pid_controller)
    register_controller("mpc", mpc_controller)
    spec = json.loads((ROOT / "examples/trials/glucose-3-meals.json").read_text())
    spec["insulin"].pop("boluses")
    scenario = GlucoseScenario.model_validate(spec)
    names = ["adult#001", "adolescent#003", "child#002"]
    tir = {}
    for ctrl in ("open-loop", "pid", "mpc"):
        r = run_trial(names, scenario, controller=ctrl, seed=3)
        tir[ctrl] = np.mean([m["tir_percent"] for m in r.metrics])
        if ctrl != "open-loop":
            assert r.bg_mg_dl.min() > 54.0
            assert np.all(r.insulin_u_min >= 0)
    assert tir["pid"] > tir["open-loop"] and tir["mpc"] > tir["open-loop"]
