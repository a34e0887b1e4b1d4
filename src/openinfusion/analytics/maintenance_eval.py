"""Judge the risk model against the threshold rule on held-out simulated fleets.

Both are scored on the same pump-days of fleets simulated from seeds the model never saw:

- **PR-AUC** (average precision) of the score over pump-days, label = fails within the
  horizon;
- at the **same alert budget**: the rule alerts on the pump-days where it fires; the model
  alerts on as many pump-days, its highest risks. **Precision** = alerts followed by a
  failure within the horizon / alerts; **recall** = failures with at least one alert in the
  horizon before them / failures; **lead time** = days from the first such alert to the
  failure (median over the failures caught).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from openinfusion.analytics.fleet_sim import FleetConfig, SimulatedFleet, simulate_fleet
from openinfusion.analytics.maintenance_features import compute_features
from openinfusion.analytics.maintenance_model import (
    WARM_UP_D,
    RiskModel,
    ThresholdRule,
    default_model,
    labels,
    usable,
)
from openinfusion.analytics.telemetry import FloatArray
from openinfusion.errors import InputError

GAP_D = 7


@dataclass(frozen=True, slots=True)
class Scores:
    """One method's figures on held-out fleets."""

    pr_auc: float
    precision: float
    recall: float
    median_lead_days: float
    alerts: int
    failures: int
    caught: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    horizon_d: int
    seeds: tuple[int, ...]
    pumps: int
    days: int
    pump_days: int
    positives: int
    alerts_per_day: int
    model: Scores
    rule: Scores
    rule_settings: ThresholdRule

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        return out


def top_per_day(scores: FloatArray, k: int) -> np.ndarray:
    """True for each day's ``k`` highest finite scores (pumps × days)."""
    order = np.argsort(-scores, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[0])[:, None], axis=0)
    return (ranks < k) & np.isfinite(scores)


def _alert_scores(
    fleet: SimulatedFleet, alerts: np.ndarray, horizon_d: int
) -> tuple[int, int, list[int]]:
    """(true alerts, failures judged, lead days of caught failures) for one fleet. A failure
    is caught by an alert within the horizon before it; its lead time counts from the first
    alert of the unbroken run of alerted days (gaps up to a week) that reaches the horizon."""
    days = np.arange(fleet.config.days)
    y = labels(fleet, days, horizon_d)
    true_alerts = int((alerts & (y > 0)).sum())
    leads: list[int] = []
    judged = 0
    last = fleet.config.days - 1
    for p, f in enumerate(fleet.failure_day):
        if not WARM_UP_D + horizon_d <= f <= last:
            continue  # its whole warning window must be observed
        judged += 1
        alerted = np.flatnonzero(alerts[p, :f])
        if alerted.size == 0 or alerted[-1] < f - horizon_d:
            continue
        first = alerted[-1]
        for day in alerted[::-1][1:]:
            if first - day > GAP_D:
                break
            first = day
        leads.append(int(f - first))
    return true_alerts, judged, leads


def evaluate(
    seeds: tuple[int, ...] = (101, 102, 103),
    pumps: int = 300,
    days: int = 365,
    horizon_d: int = 14,
    budget_fraction: float = 0.02,
    model: RiskModel | None = None,
    rule: ThresholdRule | None = None,
) -> Evaluation:
    """Model and rule on fleets simulated from ``seeds`` (none may be the training seed)."""
    if not 0.0 < budget_fraction <= 1.0:
        raise InputError("budget", budget_fraction, "must be a fraction above 0 and at most 1")
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    model = model or default_model(horizon_d)
    rule = rule or ThresholdRule()
    if model.horizon_d != horizon_d:
        raise InputError("horizon_days", horizon_d, f"the model predicts {model.horizon_d} days")
    if model.trained_on.seed in seeds:
        raise InputError("seeds", model.trained_on.seed, "is the training fleet's seed")
    fleets, model_s, rule_s, keeps, ys = [], [], [], [], []
    for seed in seeds:
        fleet = simulate_fleet(FleetConfig(pumps=pumps, days=days, seed=seed))
        day_index = np.arange(days, dtype=np.int64)
        table = compute_features(fleet.telemetry, day_index)
        fleets.append(fleet)
        model_s.append(model.risk(table.values))
        rule_s.append(rule.score(table.values))
        keeps.append(usable(fleet, day_index, horizon_d))
        ys.append(labels(fleet, day_index, horizon_d))
    keep_all = np.concatenate([k.ravel() for k in keeps])
    y_all = np.concatenate([y.ravel() for y in ys])[keep_all]
    m_all = np.concatenate([s.ravel() for s in model_s])[keep_all]
    r_all = np.concatenate([s.ravel() for s in rule_s])[keep_all]
    per_day = max(1, math.ceil(budget_fraction * pumps))

    def scores(score_maps: list[FloatArray], floor: float, flat: FloatArray) -> Scores:
        true_alerts = alerts_n = judged = 0
        leads: list[int] = []
        for fleet, s, keep in zip(fleets, score_maps, keeps, strict=True):
            alerts = top_per_day(np.where(keep & (s >= floor), s, -np.inf), per_day)
            t, j, lead = _alert_scores(fleet, alerts, horizon_d)
            true_alerts += t
            alerts_n += int(alerts.sum())
            judged += j
            leads += lead
        return Scores(
            pr_auc=float(average_precision_score(y_all, flat)) if y_all.any() else 0.0,
            precision=true_alerts / alerts_n if alerts_n else 0.0,
            recall=len(leads) / judged if judged else 0.0,
            median_lead_days=float(np.median(leads)) if leads else 0.0,
            alerts=alerts_n,
            failures=judged,
            caught=len(leads),
        )

    return Evaluation(
        horizon_d=horizon_d,
        seeds=tuple(seeds),
        pumps=pumps,
        days=days,
        pump_days=int(keep_all.sum()),
        positives=int(y_all.sum()),
        alerts_per_day=per_day,
        model=scores(model_s, -np.inf, m_all),
        rule=scores(rule_s, 1.0, r_all),
        rule_settings=rule,
    )
