"""A batch of UVA/Padova 2008 virtual subjects advanced together, one minute at a time."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.errors import InputError
from openinfusion.physiology.glucose._model import N_STATES, Rhs, Rk4, State
from openinfusion.physiology.glucose._parameters import (
    MG_PER_G,
    PMOL_PER_U,
    GlucoseParameters,
)

FloatArray = NDArray[np.float64]

EAT_RATE_G_PER_MIN = 5.0  # simglucose's T1DPatient.EAT_RATE: announced carbs are eaten at 5 g/min
DEFAULT_SUBSTEPS = 1  # RK4 steps per minute; 1 keeps |ΔBG| < 1 mg/dL against dopri5 (docs)


class GlucosePatients:
    """N virtual T1D subjects (UVA/Padova 2008) whose state is one (N, 13) array.

    Inputs per minute: carbohydrate announced (g, eaten at ``eat_rate_g_per_min``) and
    subcutaneous insulin (U/min, held constant over the minute; 1 U = 6000 pmol).
    """

    def __init__(
        self,
        parameters: GlucoseParameters,
        *,
        eat_rate_g_per_min: float = EAT_RATE_G_PER_MIN,
        substeps: int = DEFAULT_SUBSTEPS,
        floor_utilisation: bool = True,
    ) -> None:
        if not eat_rate_g_per_min > 0:
            raise InputError("eat_rate_g_per_min", eat_rate_g_per_min, "must be above 0 g/min")
        if substeps < 1:
            raise InputError("substeps", substeps, "must be at least 1 per minute")
        self.parameters = parameters
        self.eat_rate_g_per_min = float(eat_rate_g_per_min)
        self.substeps = substeps
        self.floor_utilisation = floor_utilisation
        n = len(parameters)
        self._u_factor = PMOL_PER_U / parameters.body_weight_kg  # U/min -> pmol/kg/min
        self._inv_vg = 1.0 / parameters.vg_dl_per_kg
        self._rhs = Rhs(parameters, floor_utilisation=floor_utilisation)
        self._rk4 = Rk4(self._rhs, n, substeps)
        self._x = np.empty((N_STATES, n))
        self._planned_g = np.zeros(n)
        self._last_eaten_g = np.zeros(n)
        self._meal_start_q_sto_mg = np.zeros(n)
        self._meal_eaten_g = np.zeros(n)
        self._meal_busy = False
        self.t_min = 0
        self.reset()

    @classmethod
    def from_names(
        cls,
        names: Iterable[str],
        *,
        eat_rate_g_per_min: float = EAT_RATE_G_PER_MIN,
        substeps: int = DEFAULT_SUBSTEPS,
        floor_utilisation: bool = True,
    ) -> GlucosePatients:
        """The named subjects (``"adolescent#001"`` … ``"child#010"``) at basal steady state."""
        return cls(
            GlucoseParameters.from_names(names),
            eat_rate_g_per_min=eat_rate_g_per_min,
            substeps=substeps,
            floor_utilisation=floor_utilisation,
        )

    @classmethod
    def all(
        cls,
        *,
        eat_rate_g_per_min: float = EAT_RATE_G_PER_MIN,
        substeps: int = DEFAULT_SUBSTEPS,
        floor_utilisation: bool = True,
    ) -> GlucosePatients:
        """All 30 subjects at their basal steady state."""
        return cls.from_names(
            GlucoseParameters.all().names,
            eat_rate_g_per_min=eat_rate_g_per_min,
            substeps=substeps,
            floor_utilisation=floor_utilisation,
        )

    def reset(self) -> None:
        """Back to the steady state of the parameter table at t = 0 with nothing eaten."""
        self._x[...] = self.parameters.initial_state.T
        self._planned_g[:] = 0.0
        self._last_eaten_g[:] = 0.0
        self._meal_start_q_sto_mg[:] = self._x[State.Q_STO1] + self._x[State.Q_STO2]
        self._meal_eaten_g[:] = 0.0
        self._meal_busy = False
        self._rhs.set_meal(np.zeros(self.n), self._dbar_mg())
        self.t_min = 0

    def copy(self) -> GlucosePatients:
        """An independent copy (state, meal bookkeeping and clock)."""
        return copy.deepcopy(self)

    @property
    def n(self) -> int:
        """Number of subjects."""
        return self._x.shape[1]

    @property
    def names(self) -> tuple[str, ...]:
        return self.parameters.names

    @property
    def state(self) -> FloatArray:
        """The (N, 13) state (columns in :class:`State` order); a read-only view."""
        view = self._x.T
        view.flags.writeable = False
        return view

    @state.setter
    def state(self, value: ArrayLike) -> None:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (self.n, N_STATES):
            raise InputError("state", arr.shape, f"must have shape ({self.n}, {N_STATES})")
        if not np.isfinite(arr).all():
            raise InputError("state", "non-finite", "every state value must be finite")
        self._x[...] = arr.T

    @property
    def bg_mg_dl(self) -> FloatArray:
        """Plasma glucose Gp/Vg, mg/dL, shape (N,)."""
        gp: FloatArray = self._x[State.GP]
        return gp * self._inv_vg

    @property
    def subcutaneous_glucose_mg_dl(self) -> FloatArray:
        """Subcutaneous (interstitial) glucose Gs/Vg, mg/dL: what a CGM senses. simglucose
        reports this as its patient's ``Gsub`` and its environment's "BG"."""
        gs: FloatArray = self._x[State.GS]
        return gs * self._inv_vg

    @property
    def steady_state_basal_u_per_h(self) -> FloatArray:
        """Basal rate that holds each subject at its table steady state, U/h (u2ss·BW/6000·60)."""
        return self.parameters.basal_u_per_h

    @property
    def steady_state_basal_u_per_min(self) -> FloatArray:
        """The same basal in U/min, the unit ``step`` takes."""
        return self.parameters.basal_u_per_h / 60.0

    @property
    def carbs_waiting_g(self) -> FloatArray:
        """Announced carbohydrate not eaten yet, g."""
        return self._planned_g.copy()

    def step(
        self, carbs_g: ArrayLike = 0.0, insulin_u_per_min: ArrayLike = 0.0, minutes: int = 1
    ) -> FloatArray:
        """Advance ``minutes`` minutes; return plasma BG (mg/dL, shape (N,)) at the end.

        ``carbs_g`` (scalar or (N,)) is announced at the start of the step and eaten at
        ``eat_rate_g_per_min``; ``insulin_u_per_min`` (scalar or (N,)) is held for the whole
        step. A controller acting every 5 min calls ``step(carbs, rate, minutes=5)``.
        """
        carbs = _per_subject("carbs_g", carbs_g, self.n)
        insulin = _per_subject("insulin_u_per_min", insulin_u_per_min, self.n)
        if minutes < 1:
            raise InputError("minutes", minutes, "must be at least 1")
        self._minute(carbs, insulin)
        for _ in range(minutes - 1):
            self._minute(None, insulin)
        return self.bg_mg_dl

    def _minute(self, announced_g: FloatArray | None, insulin_u_per_min: FloatArray) -> None:
        """One minute: queue and eat carbohydrate, update Dbar, integrate (RK4)."""
        if announced_g is not None and announced_g.any():
            self._planned_g += announced_g
            self._meal_busy = True
        if self._meal_busy:
            self._eat()
        np.multiply(insulin_u_per_min, self._u_factor, out=self._rhs.insulin_pmol_per_kg_min)
        self._rk4.minute(self._x)
        self.t_min += 1

    def _eat(self) -> None:
        """Eat up to ``eat_rate_g_per_min`` of the queue this minute (simglucose's meal logic).

        A meal starts when eating resumes after a minute without food: Dbar is then the
        glucose already in the stomach plus everything eaten in this bout (simglucose,
        fixed for its issue #41 so that both terms are in mg).
        """
        eaten = np.minimum(self._planned_g, self.eat_rate_g_per_min)
        self._planned_g -= eaten
        starts = (eaten > 0.0) & (self._last_eaten_g <= 0.0)
        if starts.any():
            q_sto = self._x[State.Q_STO1] + self._x[State.Q_STO2]
            self._meal_start_q_sto_mg = np.where(starts, q_sto, self._meal_start_q_sto_mg)
            self._meal_eaten_g = np.where(starts, 0.0, self._meal_eaten_g)
        self._meal_eaten_g += eaten
        self._last_eaten_g = eaten
        self._rhs.set_meal(eaten * MG_PER_G, self._dbar_mg())
        # Stay on this path until a minute in which nobody ate and nothing is queued.
        self._meal_busy = bool(eaten.any() or self._planned_g.any())

    def _dbar_mg(self) -> FloatArray:
        return self._meal_start_q_sto_mg + self._meal_eaten_g * MG_PER_G


def _per_subject(field: str, value: ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InputError(field, arr.shape, f"must be a scalar or have shape ({n},)")
    _check_values(field, arr)
    return arr


def _check_values(field: str, arr: FloatArray) -> None:
    """Every value finite and >= 0; the error names the first bad one and where it is."""
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        index = ", ".join(map(str, where))
        raise InputError(f"{field}[{index}]", float(arr[where]), "must be finite and not negative")


def simulate(
    patients: GlucosePatients,
    minutes: int,
    carbs_g_per_min: ArrayLike,
    insulin_u_per_min: ArrayLike,
    *,
    subcutaneous_out: FloatArray | None = None,
) -> FloatArray:
    """Run ``minutes`` minutes and return plasma BG, mg/dL, shape (N, minutes + 1).

    Column 0 is the BG before the first minute; column t the BG after minute t.
    ``carbs_g_per_min`` is the carbohydrate announced in each minute (g; a 50 g meal is 50
    in one column, eaten at 5 g/min; an intake already spread at <= 5 g/min is eaten as
    given) and ``insulin_u_per_min`` the insulin rate (U/min) of each minute; both
    broadcast to (N, minutes). ``patients`` is advanced in place (use
    ``patients.copy()`` to keep it). ``subcutaneous_out``, if given with shape
    (N, minutes + 1), receives Gs/Vg (mg/dL) too.
    """
    n = patients.n
    if minutes < 0:
        raise InputError("minutes", minutes, "must not be negative")
    carbs = _schedule("carbs_g_per_min", carbs_g_per_min, n, minutes)
    insulin = _schedule("insulin_u_per_min", insulin_u_per_min, n, minutes)
    if subcutaneous_out is not None and subcutaneous_out.shape != (n, minutes + 1):
        raise InputError(
            "subcutaneous_out", subcutaneous_out.shape, f"must have shape ({n}, {minutes + 1})"
        )
    # Time-major buffers: each minute's inputs and outputs are contiguous rows.
    carbs_t = np.ascontiguousarray(carbs.T)
    insulin_t = np.ascontiguousarray(insulin.T)
    eats: list[bool] = np.any(carbs_t, axis=1).ravel().tolist()
    bg_t = np.empty((minutes + 1, n))
    gs_t = np.empty((minutes + 1, n)) if subcutaneous_out is not None else None
    x, inv_vg = patients._x, patients._inv_vg
    np.multiply(x[State.GP], inv_vg, out=bg_t[0])
    if gs_t is not None:
        np.multiply(x[State.GS], inv_vg, out=gs_t[0])
    for t in range(minutes):
        patients._minute(carbs_t[t] if eats[t] else None, insulin_t[t])
        np.multiply(x[State.GP], inv_vg, out=bg_t[t + 1])
        if gs_t is not None:
            np.multiply(x[State.GS], inv_vg, out=gs_t[t + 1])
    if subcutaneous_out is not None and gs_t is not None:
        subcutaneous_out[...] = gs_t.T
    return np.ascontiguousarray(bg_t.T)


def _schedule(field: str, value: ArrayLike, n: int, minutes: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, (n, minutes))
    except ValueError:
        raise InputError(field, arr.shape, f"must broadcast to ({n}, {minutes})") from None
    _check_values(field, arr)
    return arr
