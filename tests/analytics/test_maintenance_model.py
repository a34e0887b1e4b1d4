"""The risk model against the threshold rule on fleets it never saw, and what it explains."""

from __future__ import annotations

import numpy as np
import pytest

from openinfusion.analytics.fleet_sim import FleetConfig, simulate_fleet
from openinfusion.analytics.maintenance_eval import evaluate, top_per_day
from openinfusion.analytics.maintenance_features import FEATURES, HEALTHY
from openinfusion.analytics.maintenance_model import (
    TRAIN_SEED,
    ThresholdRule,
    default_model,
    reference_values,
    train,
)
from openinfusion.errors import InputError


@pytest.mark.parametrize("seeds", [(11, 12, 13), (41, 42, 43)])
def test_model_beats_the_threshold_rule_on_held_out_fleets(seeds: tuple[int, ...]) -> None:
    e = evaluate(seeds=seeds, pumps=200, days=365, horizon_d=14)
    m, r = e.model, e.rule
    assert m.failures == r.failures > 100  # the same failures judged for both
    assert abs(m.alerts - r.alerts) <= 0.05 * r.alerts  # the same alert budget
    assert m.pr_auc >= r.pr_auc + 0.05, (m, r)
    assert m.precision >= r.precision + 0.03, (m, r)
    assert m.recall >= r.recall, (m, r)
    assert m.median_lead_days >= 7


def test_held_out_seeds_must_not_be_the_training_seed() -> None:
    with pytest.raises(InputError) as err:
        evaluate(seeds=(TRAIN_SEED,), pumps=30, days=60)
    assert err.value.field == "seeds"


def test_training_is_deterministic() -> None:
    config = FleetConfig(pumps=80, days=120, seed=77)
    a, b = train(config, 14), train(config, 14)
    x = np.random.default_rng(0).uniform(0, 2, (50, len(FEATURES)))
    assert np.array_equal(a.risk(x), b.risk(x))


def test_bad_horizon_is_refused() -> None:
    with pytest.raises(InputError) as err:
        train(FleetConfig(pumps=30, days=60, seed=3), horizon_d=0)
    assert err.value.field == "horizon_days"


def _healthy_row(**changes: float) -> np.ndarray:
    row = np.array([HEALTHY.get(name, 200.0) for name in FEATURES])
    for name, value in changes.items():
        row[FEATURES.index(name)] = value
    return row


def test_risk_rises_with_each_degradation_and_the_cause_leads_the_reasons() -> None:
    model = default_model(14)
    healthy = model.risk(_healthy_row()[None, :])[0]
    cases = {
        "runtime_vs_first_month": {
            "runtime_vs_first_month": 0.6,
            "runtime_vs_fleet": 0.6,
            "runtime_trend": 0.75,
        },
        "occlusion_per_100h": {"occlusion_per_100h": 9.0},
        "drive_effort": {"drive_effort": 1.55, "drive_effort_trend": 0.3},
        "door_per_100h": {"door_per_100h": 8.0},
    }
    ref = reference_values(_healthy_row()[None, :])
    for cause, changes in cases.items():
        row = _healthy_row(**changes)
        assert model.risk(row[None, :])[0] > 3 * healthy, cause
        contrib = model.contributions(row, ref)
        top = max(contrib, key=lambda k: contrib[k])
        assert top in changes, (cause, contrib)


def test_threshold_rule_fires_at_its_limits() -> None:
    rule = ThresholdRule()
    assert rule.score(_healthy_row()[None, :])[0] < 1.0
    assert rule.score(_healthy_row(runtime_vs_first_month=0.79)[None, :])[0] >= 1.0
    assert rule.score(_healthy_row(occlusion_per_100h=3.1)[None, :])[0] >= 1.0
    assert rule.score(_healthy_row(drive_effort=np.nan)[None, :])[0] < 1.0


def test_top_per_day_takes_each_days_highest() -> None:
    s = np.array([[3.0, -np.inf], [1.0, 2.0], [2.0, 1.0]])
    assert top_per_day(s, 1).tolist() == [[True, False], [False, True], [False, False]]


def test_a_pump_with_a_short_record_is_still_ranked() -> None:
    """No first month and no 30-day trend yet (a pump new to the server)."""
    short = {
        "runtime_vs_first_month": np.nan,
        "runtime_trend": np.nan,
        "drive_effort_trend": np.nan,
    }
    model = default_model(14)
    healthy = model.risk(_healthy_row(**short)[None, :])[0]
    for worn in ({"drive_effort": 1.48}, {"runtime_vs_fleet": 0.45}, {"door_per_100h": 15.0}):
        assert model.risk(_healthy_row(**short, **worn)[None, :])[0] > 10 * healthy, worn


def test_alert_scoring_counts_catches_and_lead_from_the_first_alert_of_the_run() -> None:
    from openinfusion.analytics.maintenance_eval import _alert_scores

    fleet = simulate_fleet(FleetConfig(pumps=3, days=100, seed=1))
    fleet.failure_day[:] = [60, 80, 100]  # pump 2 never fails within the period
    alerts = np.zeros((3, 100), dtype=bool)
    alerts[0, 40:44] = True  # a run ...
    alerts[0, 48:59] = True  # ... gap of 4 days (< a week): lead counts from day 40
    alerts[1, 30:35] = True  # too early: ends before the 14-day horizon before day 80
    alerts[2, 90:95] = True  # false alarms
    true_alerts, judged, leads = _alert_scores(fleet, alerts, 14)
    assert judged == 2 and leads == [20]
    # true alerts: days 46..59 before the failure at 60 that were alerted (48..58)
    assert true_alerts == 11
