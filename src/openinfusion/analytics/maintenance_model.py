"""Risk of failure in the next N days: a gradient-boosted model and a threshold rule.

The model (scikit-learn ``HistGradientBoostingClassifier``, fixed seed, no early stopping)
is trained on windowed features of a seeded simulated fleet whose failures are known, so
the same seed always gives the same model: it is trained when first needed, never loaded
from a pickle. The threshold rule is what a biomedical department would write by hand:
alert when battery run time has fallen 20 % below its first month, occlusion or door alarms
exceed 3 per 100 infusion-hours, or drive effort is 30 % above rated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.analytics.fleet_sim import FleetConfig, SimulatedFleet, simulate_fleet
from openinfusion.analytics.maintenance_features import FEATURES, HEALTHY, compute_features
from openinfusion.analytics.telemetry import FloatArray
from openinfusion.errors import InputError

DEFAULT_HORIZON_D = 14
#: Days at the start of a record without alerts or labels (features need history).
WARM_UP_D = 14
#: The training fleet: seeds of held-out fleets must differ from it.
TRAIN_SEED = 20260101
TRAIN_CONFIG = FleetConfig(pumps=300, days=365, seed=TRAIN_SEED)
#: Share of training samples shown as a pump with a short record (see ``train``).
SHORT_HISTORY_SHARE = 0.25
HISTORY_FEATURES = ("runtime_vs_first_month", "runtime_trend", "drive_effort_trend")
TRAIN_EVERY_D = 5  # every 5th day: neighbouring days are near copies


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """The hand-written baseline (an alert when any limit is crossed)."""

    runtime_ratio_below: float = 0.8
    occlusion_per_100h_above: float = 3.0
    door_per_100h_above: float = 3.0
    effort_above: float = 1.3

    def score(self, values: FloatArray) -> FloatArray:
        """How far past its nearest limit a pump is (>= 1 means the rule alerts)."""

        def col(name: str) -> FloatArray:
            return values[..., FEATURES.index(name)]

        runtime = np.nan_to_num(col("runtime_vs_first_month"), nan=1.0)
        effort = np.nan_to_num(col("drive_effort"), nan=1.0)
        parts = [
            self.runtime_ratio_below / np.clip(runtime, 1e-6, None),
            col("occlusion_per_100h") / self.occlusion_per_100h_above,
            col("door_per_100h") / self.door_per_100h_above,
            effort / self.effort_above,
        ]
        return np.asarray(np.max(np.stack(parts), axis=0), dtype=np.float64)


def labels(fleet: SimulatedFleet, days: NDArray[np.int64], horizon_d: int) -> FloatArray:
    """1 where the pump fails within (d, d + horizon] days, else 0 (pumps × days)."""
    fail = fleet.failure_day[:, None]
    failed = fail < fleet.config.days  # ``days`` stands for "no failure in the period"
    window = (fail > days[None, :]) & (fail <= days[None, :] + horizon_d)
    return (failed & window).astype(np.float64)


def usable(fleet: SimulatedFleet, days: NDArray[np.int64], horizon_d: int) -> NDArray[np.bool_]:
    """Pump-days that count: in service, after the warm-up, label not cut off by the end."""
    d = days[None, :]
    last = fleet.config.days - 1 - horizon_d
    in_service = fleet.failure_day[:, None] > d
    return in_service & (d >= WARM_UP_D) & (d <= last)


@dataclass(slots=True)
class RiskModel:
    """A trained classifier and the horizon it predicts."""

    classifier: Any  # sklearn HistGradientBoostingClassifier, fitted
    horizon_d: int
    trained_on: FleetConfig

    def risk(self, values: FloatArray) -> FloatArray:
        """Probability of failure within the horizon for feature rows (..., features)."""
        flat = values.reshape(-1, len(FEATURES))
        p = self.classifier.predict_proba(flat)[:, 1]
        return np.asarray(p, dtype=np.float64).reshape(values.shape[:-1])

    def contributions(self, row: FloatArray, reference: dict[str, float]) -> dict[str, float]:
        """Risk removed by setting each feature of one pump to its ``reference`` value
        (positive: the feature raises this pump's risk)."""
        many = self.contributions_many(row[None, :], reference)[0]
        return {name: float(many[i]) for i, name in enumerate(FEATURES)}

    def contributions_many(self, rows: FloatArray, reference: dict[str, float]) -> FloatArray:
        """:meth:`contributions` for many pumps at once (pumps × features), in one call."""
        n, f = rows.shape
        trials = np.repeat(rows[:, None, :], f, axis=1)  # pump, feature replaced, features
        for i, name in enumerate(FEATURES):
            if name in reference:
                trials[:, i, i] = reference[name]
        base = self.risk(rows)
        others = self.risk(trials.reshape(n * f, f)).reshape(n, f)
        return np.asarray(base[:, None] - others, dtype=np.float64)


def train(config: FleetConfig = TRAIN_CONFIG, horizon_d: int = DEFAULT_HORIZON_D) -> RiskModel:
    """Train on a simulated fleet (deterministic for a given config and horizon)."""
    if not 1 <= horizon_d <= 90:
        raise InputError("horizon_days", horizon_d, "must be 1 to 90")
    # imported here: scikit-learn takes seconds to import, the server should not wait for it
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    fleet = simulate_fleet(config)
    days = np.arange(0, config.days, TRAIN_EVERY_D, dtype=np.int64)
    table = compute_features(fleet.telemetry, days)
    keep = usable(fleet, days, horizon_d)
    x = table.values[keep].copy()
    y = labels(fleet, days, horizon_d)[keep]
    # A pump new to the server has no first month and no 30-day trend yet: hide those
    # features on a share of the samples so the model also ranks such pumps.
    hide = np.random.default_rng(config.seed).random(len(x)) < SHORT_HISTORY_SHARE
    for name in HISTORY_FEATURES:
        x[hide, FEATURES.index(name)] = np.nan
    classifier = HistGradientBoostingClassifier(
        max_iter=120,
        learning_rate=0.08,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=0,
    )
    classifier.fit(x, y)
    return RiskModel(classifier, horizon_d, config)


@functools.lru_cache(maxsize=4)
def default_model(horizon_d: int = DEFAULT_HORIZON_D) -> RiskModel:
    """The model trained on :data:`TRAIN_CONFIG` (trained once per process and horizon)."""
    return train(TRAIN_CONFIG, horizon_d)


def reference_values(values: FloatArray) -> dict[str, float]:
    """Healthy reference per feature; days since service: the fleet median."""
    ref = dict(HEALTHY)
    since = values[..., FEATURES.index("days_since_service")]
    ref["days_since_service"] = float(np.nanmedian(since)) if since.size else 0.0
    return ref
