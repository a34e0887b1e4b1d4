"""Target-controlled infusion (TCI): plasma and effect-site targeting, decrement times.

Every ``step_s`` (default 10 s) the controller picks one constant rate for the next step:

* plasma targeting (Jacobs, IEEE Trans Biomed Eng 1990;37:107; STANPUMP, Shafer): the rate
  that brings the predicted Cp to the target at the end of the step, clamped to
  [0, max rate];
* effect-site targeting (Shafer & Gregg, J Pharmacokinet Biopharm 1992;20:147): the largest
  rate whose future effect-site peak, assuming nothing is given after the step, does not
  exceed the target; once Ce is within 5 % and Cp within 20 % of the target (the switch
  rule of the R ``tci`` package) maintenance is plasma targeting, still capped by the
  Shafer-Gregg rate, so Ce never overshoots and the rate does not chatter on/off.

Predictions use the exact one-step map of the compartment model (Bailey & Shafer, IEEE
Trans Biomed Eng 1991;38:522), built once per controller from
:func:`openinfusion.physiology.pk.simulate`: state ``x = [A1, A2, A3, Ce]`` moves as
``x' = Φ x + Γ R`` over a step. Replaying a plan through ``simulate`` gives the same Cp
and Ce to rounding.

Units: times in s, amounts in the model's amount unit (mg for propofol, µg for
remifentanil), rates in amount/s, concentrations in amount/L (mg/L = µg/mL).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from openinfusion.errors import InputError
from openinfusion.physiology.pk import (
    PkModel,
    PkState,
    Schedule,
    simulate,
)

FloatArray = npt.NDArray[np.float64]

_SECONDS_PER_MIN = 60.0
# Switch from effect-site seeking to maintenance (R tci 0.2.1, ``tci_effect``): Ce within
# 5 % and Cp within 20 % of the target.
_SWITCH_CE_FRACTION = 0.05
_SWITCH_CP_FRACTION = 0.20
# Effect-site look-ahead: at least 20 min and 3 bolus times-to-peak, at most 3600 points.
_MIN_HORIZON_S = 1200.0
_MAX_HORIZON_POINTS = 3600
_MAX_LOOKAHEAD_POINTS = 200_000
_LOOKAHEAD_DT_S = 1.0


class Site(StrEnum):
    """Where the target applies."""

    PLASMA = "plasma"
    EFFECT = "effect"

    @classmethod
    def parse(cls, text: str | Site) -> Site:
        """``plasma`` or ``effect`` (also ``effect-site``, ``cp``, ``ce``)."""
        key = str(text).strip().lower().replace("_", "-")
        aliases = {"cp": "plasma", "ce": "effect", "effect-site": "effect"}
        try:
            return cls(aliases.get(key, key))
        except ValueError:
            raise InputError("site", text, "must be plasma or effect") from None


@dataclass(frozen=True, slots=True)
class TciPlan:
    """A TCI plan on the step grid ``t_s`` (K+1 boundaries 0, Δ, ..., KΔ after the start).

    ``rate_per_s`` (K+1,) amount/s in force from each boundary (the last is 0: the plan
    stops there); ``cp`` and ``ce`` (K+1,) predicted at the boundaries, amount/L;
    ``target`` (K+1,) amount/L in force at each boundary; ``final`` the state at the end.
    """

    t_s: FloatArray
    rate_per_s: FloatArray
    cp: FloatArray
    ce: FloatArray
    target: FloatArray
    site: Site
    step_s: float
    final: PkState

    @property
    def total_amount(self) -> float:
        """Amount given over the plan (model amount unit)."""
        return float(np.sum(self.rate_per_s[:-1] * np.diff(self.t_s)))

    def schedule(self) -> Schedule:
        """The plan as a :class:`Schedule` (for :func:`simulate` or a pump)."""
        return Schedule(
            rate_start_s=self.t_s,
            rate_per_s=self.rate_per_s,
            bolus_at_s=np.zeros(0),
            bolus_amount=np.zeros(0),
        )


class TciController:
    """Plans TCI for one patient (a :class:`PkModel` with N = 1) at a fixed update step.

    ``step_s`` update interval (s); ``max_rate_per_s`` pump limit (amount/s, e.g.
    1200 mL/h of 10 mg/mL propofol = 10/3 mg/s; ``inf`` for none). The step maps are
    precomputed here, so :meth:`plan` costs a few small products per step.
    """

    def __init__(
        self, model: PkModel, step_s: float = 10.0, max_rate_per_s: float = math.inf
    ) -> None:
        if model.n_patients != 1:
            raise InputError("model", f"{model.n_patients} patients", "TCI plans one patient")
        if not (math.isfinite(step_s) and 0.0 < step_s <= 600.0):
            raise InputError("step_s", step_s, "must be between 0 and 600 s")
        if math.isnan(max_rate_per_s) or max_rate_per_s <= 0:
            raise InputError("max_rate_per_s", max_rate_per_s, "must be greater than 0")
        self.model = model
        self.step_s = float(step_s)
        self.max_rate_per_s = float(max_rate_per_s)
        self.v1_l = float(model.v1_l[0])
        # One exact sub-step map (about 1 s) from the PK engine; the step map is its power.
        self._sub = max(1, round(self.step_s / _LOOKAHEAD_DT_S))
        self._phi_dt, self._gamma_dt = _step_map(model, self.step_s / self._sub)
        self.phi, self.gamma = _power(self._phi_dt, self._gamma_dt, self._sub)
        # Plasma prediction at the end of a step: Cp' = cp_free·x + cp_unit·R.
        self._cp_free = self.phi[0] / self.v1_l
        self._cp_unit = float(self.gamma[0]) / self.v1_l
        self._horizon: FloatArray | None = None
        self._ce_free: FloatArray | None = None
        self._ce_unit: FloatArray | None = None
        self._buf = np.empty(0)
        self._buf2 = np.empty(0)

    # ---- effect-site look-ahead (built on first use) ------------------------------------

    def _lookahead(self) -> tuple[FloatArray, FloatArray]:
        """(J, 4) matrix G and (J,) vector w with ``(target - Ce_free(τ_j)) / u(τ_j) =
        target·w_j - (G x)_j`` on the look-ahead grid τ_j (see :func:`_responses`)."""
        if self._ce_free is None or self._ce_unit is None:
            if not self.model.has_effect_site:
                raise InputError("site", "effect", "the model has no effect site (no ke0)")
            tau, free, unit = _responses(
                self.model,
                self.step_s,
                (self._phi_dt, self._gamma_dt, self._sub),
                (self.phi, self.gamma),
            )
            self._horizon = tau
            self._ce_free = np.ascontiguousarray(free / unit[:, None])
            self._ce_unit = 1.0 / unit
            self._buf = np.empty(tau.size)
            self._buf2 = np.empty(tau.size)
        return self._ce_free, self._ce_unit

    # ---- one step -----------------------------------------------------------------------

    def plasma_rate(self, x: FloatArray, target: float) -> float:
        """Rate (amount/s) that puts Cp at ``target`` at the end of the step, clamped."""
        need = (target - float(self._cp_free @ x)) / self._cp_unit
        return min(max(need, 0.0), self.max_rate_per_s)

    def effect_rate(self, x: FloatArray, target: float) -> float:
        """Shafer-Gregg rate (amount/s): largest whose future Ce peak is at most ``target``,
        assuming no drug after the step; clamped to [0, max rate]."""
        g, w = self._lookahead()
        ratio = np.multiply(w, target, out=self._buf)
        ratio -= np.dot(g, x, out=self._buf2)
        j = int(ratio.argmin())
        best = float(ratio[j])
        if 0 < j < ratio.size - 1:
            # The peak falls between look-ahead points: parabolic minimum through three.
            a, c = float(ratio[j - 1]), float(ratio[j + 1])
            curve = a - 2.0 * best + c
            if curve > 0:
                best -= (c - a) ** 2 / (8.0 * curve)
        return min(max(best, 0.0), self.max_rate_per_s)

    # ---- whole plan ---------------------------------------------------------------------

    def plan(
        self,
        targets: float | Sequence[tuple[float, float]],
        duration_s: float,
        site: Site | str = Site.PLASMA,
        initial: PkState | None = None,
    ) -> TciPlan:
        """Plan ``duration_s`` (a whole number of steps) from ``initial`` (default drug-free).

        ``targets`` a concentration (amount/L) or changes ``[(t_s, target), ...]``
        (t_s after the start; a change takes effect at the first update at or after t_s;
        the first must be at 0 s).
        """
        where = Site.parse(site)
        steps = _step_count(duration_s, self.step_s)
        t0 = 0.0 if initial is None else float(initial.t_s)
        t = t0 + np.arange(steps + 1, dtype=np.float64) * self.step_s
        tgt = _target_track(targets, steps, self.step_s)
        x0, x1, x2, x3 = (float(v) for v in _state_vector(initial, self.model))
        xa = np.array([x0, x1, x2, x3])
        history = [(x0, x1, x2, x3)]
        rates = np.zeros(steps + 1)
        maintaining = False
        effect = where is Site.EFFECT
        # Plain floats: a 4-state step costs less in Python arithmetic than in NumPy calls.
        (p00, p01, p02, p03), (p10, p11, p12, p13), (p20, p21, p22, p23), (p30, p31, p32, p33) = (
            tuple(float(v) for v in row) for row in self.phi
        )
        g0, g1, g2, g3 = (float(v) for v in self.gamma)
        cp_unit, v1, rmax = g0 / self.v1_l, self.v1_l, self.max_rate_per_s
        ce_lo, cp_lo = 1.0 - _SWITCH_CE_FRACTION, 1.0 - _SWITCH_CP_FRACTION
        ce_hi, cp_hi = 1.0 + _SWITCH_CE_FRACTION, 1.0 + _SWITCH_CP_FRACTION
        previous = math.nan
        for k, target in enumerate(tgt[:-1].tolist()):
            if target != previous:
                maintaining = False
                previous = target
            # Plasma rule: Cp at the end of the step equals the target.
            plasma = (target - (p00 * x0 + p01 * x1 + p02 * x2 + p03 * x3) / v1) / cp_unit
            plasma = min(max(plasma, 0.0), rmax)
            if not effect:
                rate = plasma
            else:
                if not maintaining and target > 0:
                    cp = x0 / v1
                    maintaining = (
                        ce_lo * target <= x3 <= ce_hi * target
                        and cp_lo * target <= cp <= cp_hi * target
                    )
                if maintaining and plasma == 0.0:
                    rate = 0.0
                else:
                    xa[0], xa[1], xa[2], xa[3] = x0, x1, x2, x3
                    rate = self.effect_rate(xa, target)
                    if maintaining:
                        rate = min(rate, plasma)
            rates[k] = rate
            x0, x1, x2, x3 = (
                p00 * x0 + p01 * x1 + p02 * x2 + p03 * x3 + g0 * rate,
                p10 * x0 + p11 * x1 + p12 * x2 + p13 * x3 + g1 * rate,
                p20 * x0 + p21 * x1 + p22 * x2 + p23 * x3 + g2 * rate,
                p30 * x0 + p31 * x1 + p32 * x2 + p33 * x3 + g3 * rate,
            )
            history.append((x0, x1, x2, x3))
        xs = np.array(history, dtype=np.float64)
        final = PkState(
            float(t[-1]), xs[-1, :3].reshape(1, 3).copy(), np.array([xs[-1, 3]], dtype=np.float64)
        )
        ce = xs[:, 3] if self.model.has_effect_site else xs[:, 0] / self.v1_l
        return TciPlan(
            t_s=t,
            rate_per_s=rates,
            cp=xs[:, 0] / self.v1_l,
            ce=np.array(ce, dtype=np.float64),
            target=tgt,
            site=where,
            step_s=self.step_s,
            final=final,
        )


def plan_tci(
    model: PkModel,
    targets: float | Sequence[tuple[float, float]],
    duration_s: float,
    site: Site | str = Site.PLASMA,
    step_s: float = 10.0,
    max_rate_per_s: float = math.inf,
    initial: PkState | None = None,
) -> TciPlan:
    """One-call form of :meth:`TciController.plan` (units as there)."""
    controller = TciController(model, step_s, max_rate_per_s)
    return controller.plan(targets, duration_s, site, initial)


def decrement_time_s(
    model: PkModel,
    state: PkState,
    threshold: float,
    site: Site | str = Site.EFFECT,
    horizon_s: float = 7 * 86400.0,
) -> float:
    """Seconds after ``state`` (no more drug) until Cp or Ce falls to ``threshold``
    (amount/L) and stays at or below it; 0 if it never rises above, ``inf`` if not within
    ``horizon_s``. Ce may first rise after the infusion stops; the last crossing counts.
    (Decrement time: Hughes, Glass & Jacobs, Anesthesiology 1992;76:334; stanpumpR
    ``recoveryCalc``.)
    """
    where = Site.parse(site)
    if model.n_patients != 1:
        raise InputError("model", f"{model.n_patients} patients", "one patient at a time")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InputError("threshold", threshold, "must be a concentration >= 0")
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise InputError("horizon_s", horizon_s, "must be a number of seconds > 0")
    if where is Site.EFFECT and not model.has_effect_site:
        where = Site.PLASMA
    t0 = float(state.t_s)
    none = Schedule.build()

    def conc(tau: FloatArray) -> FloatArray:
        result = simulate(model, none, t0 + tau, initial=state)
        values = result.cp[0] if where is Site.PLASMA else result.ce[0]
        return np.asarray(values, dtype=np.float64)

    tau = np.concatenate(([0.0], np.geomspace(0.01, horizon_s, 4000)))
    above = conc(tau) > threshold
    if not above.any():
        return 0.0
    last = int(np.flatnonzero(above)[-1])
    if last == tau.size - 1:
        return math.inf
    lo, hi = float(tau[last]), float(tau[last + 1])
    for _ in range(3):  # each pass narrows the bracket 1024-fold
        fine = np.linspace(lo, hi, 1025)
        above = conc(fine) > threshold
        i = int(np.flatnonzero(above)[-1]) if above.any() else 0
        lo, hi = float(fine[i]), float(fine[min(i + 1, fine.size - 1)])
    return hi


# ---- helpers ----------------------------------------------------------------------------


def _step_count(duration_s: float, step_s: float) -> int:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise InputError("duration_s", duration_s, "must be a number of seconds > 0")
    steps = round(duration_s / step_s)
    if steps < 1 or abs(steps * step_s - duration_s) > 1e-6 * max(1.0, duration_s):
        raise InputError("duration_s", duration_s, f"must be a whole number of {step_s:g}-s steps")
    if steps > 1_000_000:
        raise InputError("duration_s", duration_s, "gives more than 1000000 steps")
    return int(steps)


def _target_track(
    targets: float | Sequence[tuple[float, float]], steps: int, step_s: float
) -> FloatArray:
    """Target (amount/L) in force at each of the steps + 1 boundaries."""
    changes = [(0.0, float(targets))] if isinstance(targets, int | float) else list(targets)
    if not changes:
        raise InputError("targets", "[]", "needs at least one target")
    times = np.array([float(t) for t, _ in changes])
    values = np.array([float(c) for _, c in changes])
    for i, (t, c) in enumerate(zip(times, values, strict=True)):
        if not (math.isfinite(c) and c >= 0):
            raise InputError(f"targets[{i}].target", c, "must be a concentration >= 0")
        if not (math.isfinite(t) and t >= 0):
            raise InputError(f"targets[{i}].t_s", t, "must be a time >= 0 s")
    if times[0] != 0.0:
        raise InputError("targets[0].t_s", float(times[0]), "the first target must start at 0 s")
    if np.any(np.diff(times) <= 0):
        raise InputError("targets", times.tolist(), "times must be strictly increasing")
    # The change at t_s applies from the first boundary k·Δ >= t_s.
    first_step = np.ceil(times / step_s - 1e-9).astype(np.int64)
    index = np.searchsorted(first_step, np.arange(steps + 1), side="right") - 1
    return np.asarray(values[index], dtype=np.float64)


def _state_vector(initial: PkState | None, model: PkModel) -> FloatArray:
    x = np.zeros(4)
    if initial is not None:
        amounts = np.asarray(initial.amounts, dtype=np.float64).reshape(-1)
        if amounts.size != 3:
            raise InputError("initial", f"{amounts.size} amounts", "must hold one patient")
        x[:3] = amounts
        x[3] = float(np.asarray(initial.ce).reshape(-1)[0])
        if not model.has_effect_site:
            x[3] = x[0] / float(model.v1_l[0])
    return x


def _step_map(model: PkModel, step_s: float) -> tuple[FloatArray, FloatArray]:
    """Exact Φ (4, 4) and Γ (4,) of ``x' = Φ x + Γ R`` over ``step_s`` (R amount/s).

    One :func:`simulate` call on five copies of the patient: unit A1, A2, A3 and Ce
    (columns of Φ) and a unit rate from zero (Γ).
    """
    copies = model.take([0] * 5)
    amounts = np.zeros((5, 3))
    amounts[0, 0] = amounts[1, 1] = amounts[2, 2] = 1.0
    ce = np.zeros(5)
    ce[3] = 1.0
    unit_rate = Schedule.build(infusions=[(0.0, step_s, np.array([0.0, 0.0, 0.0, 0.0, 1.0]))])
    end = simulate(copies, unit_rate, np.array([step_s]), initial=PkState(0.0, amounts, ce)).final
    columns = np.concatenate((end.amounts, end.ce[:, None]), axis=1)  # (5, 4)
    if not model.has_effect_site:
        columns[:, 3] = columns[:, 0] / float(model.v1_l[0])
    return np.ascontiguousarray(columns[:4].T), np.ascontiguousarray(columns[4])


def _responses(
    model: PkModel,
    step_s: float,
    sub_map: tuple[FloatArray, FloatArray, int],
    step_map: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Look-ahead grid τ (J,) s after a step start, the free Ce response (J, 4) to each
    state component, and the Ce response (J,) to a unit rate (amount/s) held for one step
    and then stopped (exact: powers of the sub-step map ``Φ_dt, Γ_dt`` with ``sub``
    sub-steps per step).

    The horizon is 20 min or three times the bolus time to peak Ce, whichever is longer
    (at most 3600 points, else a grid of whole steps).
    """
    phi_dt, gamma_dt, sub = sub_map
    phi, gamma = step_map
    dt = step_s / sub
    points = math.ceil(_MIN_HORIZON_S / dt)
    while True:
        rows = _ce_rows(phi_dt, points)  # rows[j] = Ce row of Φ_dt^j, j = 0..points
        peak = int(np.argmax(rows[:, 0]))  # after a bolus into A1: time to peak Ce
        if 3 * peak <= points:
            break
        points = 2 * points if peak == points else 3 * peak
        if points > _MAX_HORIZON_POINTS and sub > 1:
            points = math.ceil(points / sub)
            sub, dt, phi_dt, gamma_dt = 1, step_s, phi, gamma
        if points > _MAX_LOOKAHEAD_POINTS:
            raise InputError("ke0_per_min", model.ke0_per_min, "puts the Ce peak too far ahead")
    unit = np.empty(points)
    # Within the step: Γ(j·dt) = Φ_dt Γ((j-1)·dt) + Γ_dt; after it: Ce row of Φ(τ - Δ) · Γ(Δ).
    g = np.zeros(4)
    for j in range(min(sub, points)):
        g = phi_dt @ g + gamma_dt
        unit[j] = g[3]
    if points > sub:
        unit[sub:] = rows[1 : points - sub + 1] @ gamma
    tau = np.arange(1, points + 1, dtype=np.float64) * dt
    keep = unit > 0
    return tau[keep], rows[1:][keep], unit[keep]


def _ce_rows(phi: FloatArray, points: int) -> FloatArray:
    """Rows j = 0..points of the Ce row of Φ^j, (points + 1, 4), by repeated doubling."""
    rows = np.empty((points + 1, 4))
    rows[0] = (0.0, 0.0, 0.0, 1.0)
    power, filled = phi, 1
    while filled <= points:
        take = min(filled, points + 1 - filled)
        rows[filled : filled + take] = rows[:take] @ power
        filled += take
        power = power @ power
    return rows


def _power(phi: FloatArray, gamma: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """The map of ``n`` sub-steps: Φⁿ and Σ_{i<n} Φⁱ Γ."""
    big_phi, big_gamma = np.eye(4), np.zeros(4)
    for _ in range(n):
        big_gamma = phi @ big_gamma + gamma
        big_phi = phi @ big_phi
    return np.ascontiguousarray(big_phi), np.ascontiguousarray(big_gamma)
