"""Mammillary 1-, 2- and 3-compartment models with an effect site, solved exactly.

The model (amounts ``A_i``, central concentration ``Cp = A1/V1``)::

    dA1/dt = R(t) - (k10 + k12 + k13) A1 + k21 A2 + k31 A3
    dA2/dt = k12 A1 - k21 A2
    dA3/dt = k13 A1 - k31 A3
    dCe/dt = ke0 (A1/V1 - Ce)          (effect site of negligible volume)

``R(t)`` is piecewise constant (infusions) and boluses are instantaneous amounts added to
``A1``. Between two schedule events the solution is closed form (Bailey JM, Shafer SL,
IEEE Trans Biomed Eng 1991;38:522-5): the disposition matrix is symmetrised
(``sqrt(k1j kj1)`` off-diagonal), diagonalised once per patient (real eigenvalues, an
orthonormal basis even when eigenvalues coincide), and every grid point of a segment is
evaluated at once. Effect-site terms use divided differences of ``exp`` computed without
cancellation, so ``ke0`` equal to a disposition exponent is not a special case. A 24-hour
schedule costs one evaluation per constant-rate segment, not one per time step.

Units: volumes in L, rate constants in 1/min (as published), schedule and grid times in
seconds, infusion rates in amount/s and boluses in amount, where "amount" is the model's
amount unit (mg for propofol, µg for remifentanil, IU for heparin ...). Concentrations come
out in amount/L (mg/L = µg/mL; µg/L = ng/mL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from openinfusion.errors import InputError

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | Sequence[float] | npt.NDArray[np.floating]

_SECONDS_PER_MIN = 60.0
# Grid points evaluated at once per segment are chunked to bound temporary memory.
_CHUNK_ELEMENTS = 1 << 21


def _as_array(name: str, value: ArrayLike | None) -> FloatArray:
    arr = np.atleast_1d(np.asarray(0.0 if value is None else value, dtype=np.float64))
    if arr.ndim != 1:
        raise InputError(name, f"shape {arr.shape}", "must be a scalar or a 1-D array (N,)")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class PkModel:
    """Micro-constants of N patients' mammillary models; every field has shape (N,).

    ``v1_l`` central volume (L); ``k10 ... k31`` rate constants (1/min); ``ke0_per_min``
    effect-site equilibration (1/min), or None for a direct-effect drug (Ce is Cp).
    Scalars broadcast. A peripheral compartment is absent when both its constants are 0.
    """

    v1_l: FloatArray
    k10_per_min: FloatArray
    k12_per_min: FloatArray
    k21_per_min: FloatArray
    k13_per_min: FloatArray
    k31_per_min: FloatArray
    ke0_per_min: FloatArray | None

    def __init__(
        self,
        v1_l: ArrayLike,
        k10_per_min: ArrayLike,
        k12_per_min: ArrayLike = 0.0,
        k21_per_min: ArrayLike = 0.0,
        k13_per_min: ArrayLike = 0.0,
        k31_per_min: ArrayLike = 0.0,
        ke0_per_min: ArrayLike | None = None,
    ) -> None:
        names = ("v1_l", "k10_per_min", "k12_per_min", "k21_per_min", "k13_per_min")
        raw = [v1_l, k10_per_min, k12_per_min, k21_per_min, k13_per_min, k31_per_min]
        arrays = [_as_array(n, v) for n, v in zip((*names, "k31_per_min"), raw, strict=True)]
        if ke0_per_min is not None:
            arrays.append(_as_array("ke0_per_min", ke0_per_min))
        try:
            shaped = np.broadcast_arrays(*arrays)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise InputError("PkModel", shapes, "parameter arrays must share shape (N,)") from None
        out = [np.array(a, dtype=np.float64) for a in shaped]
        for a in out:
            a.setflags(write=False)
        fields = (*names, "k31_per_min", "ke0_per_min")
        for name, arr in zip(fields, out, strict=False):
            object.__setattr__(self, name, arr)
        if ke0_per_min is None:
            object.__setattr__(self, "ke0_per_min", None)
        self._validate()

    def _validate(self) -> None:
        checks: list[tuple[str, FloatArray, str]] = [
            ("v1_l", self.v1_l, "must be a finite volume greater than 0 L"),
        ]
        for name in ("k10_per_min", "k12_per_min", "k21_per_min", "k13_per_min", "k31_per_min"):
            checks.append((name, getattr(self, name), "must be a finite rate constant >= 0"))
        for name, arr, rule in checks:
            bad = ~np.isfinite(arr) | (arr <= 0 if name == "v1_l" else arr < 0)
            _raise_first(name, arr, bad, rule)
        for out, back in (("k12_per_min", "k21_per_min"), ("k13_per_min", "k31_per_min")):
            a, b = getattr(self, out), getattr(self, back)
            _raise_first(
                back, b, (a > 0) != (b > 0), f"must be > 0 exactly when {out} is > 0 (mammillary)"
            )
        if self.ke0_per_min is not None:
            ke0 = self.ke0_per_min
            _raise_first(
                "ke0_per_min", ke0, ~np.isfinite(ke0) | (ke0 <= 0), "must be finite and > 0"
            )

    @classmethod
    def from_clearances(
        cls,
        v1_l: ArrayLike,
        cl_l_min: ArrayLike,
        v2_l: ArrayLike | None = None,
        q2_l_min: ArrayLike | None = None,
        v3_l: ArrayLike | None = None,
        q3_l_min: ArrayLike | None = None,
        ke0_per_min: ArrayLike | None = None,
    ) -> PkModel:
        """Build from volumes (L) and clearances (L/min): k10 = CL/V1, k12 = Q2/V1, ..."""
        v1 = _as_array("v1_l", v1_l)
        _raise_first("v1_l", v1, ~(v1 > 0), "must be a finite volume greater than 0 L")
        k: dict[str, FloatArray | float] = {"k12": 0.0, "k21": 0.0, "k13": 0.0, "k31": 0.0}
        for label, vol, q, kout, kback in (
            ("2", v2_l, q2_l_min, "k12", "k21"),
            ("3", v3_l, q3_l_min, "k13", "k31"),
        ):
            if (vol is None) != (q is None):
                raise InputError(f"v{label}_l", vol, f"v{label}_l and q{label}_l_min go together")
            if vol is not None and q is not None:
                v = _as_array(f"v{label}_l", vol)
                _raise_first(f"v{label}_l", v, ~(v > 0), "must be a finite volume > 0 L")
                qa = _as_array(f"q{label}_l_min", q)
                k[kout] = qa / v1
                k[kback] = qa / v
        return cls(
            v1,
            _as_array("cl_l_min", cl_l_min) / v1,
            k["k12"],
            k["k21"],
            k["k13"],
            k["k31"],
            ke0_per_min,
        )

    @property
    def n_patients(self) -> int:
        """N, the number of parameter sets."""
        return int(self.v1_l.shape[0])

    @property
    def compartments(self) -> int:
        """1, 2 or 3: the largest structure any patient of the batch needs."""
        if np.any(self.k13_per_min > 0):
            return 3
        return 2 if np.any(self.k12_per_min > 0) else 1

    @property
    def has_effect_site(self) -> bool:
        """False for a direct-effect model (no ke0): the effect site then follows Cp."""
        return self.ke0_per_min is not None

    @property
    def cl_l_min(self) -> FloatArray:
        """Elimination clearance CL = k10 V1 (L/min)."""
        return self.k10_per_min * self.v1_l

    @property
    def v2_l(self) -> FloatArray:
        """Rapid peripheral volume V1 k12/k21 (L); 0 where the compartment is absent."""
        return _ratio(self.v1_l * self.k12_per_min, self.k21_per_min)

    @property
    def v3_l(self) -> FloatArray:
        """Slow peripheral volume V1 k13/k31 (L); 0 where the compartment is absent."""
        return _ratio(self.v1_l * self.k13_per_min, self.k31_per_min)

    @property
    def q2_l_min(self) -> FloatArray:
        """Intercompartmental clearance Q2 = k12 V1 (L/min)."""
        return self.k12_per_min * self.v1_l

    @property
    def q3_l_min(self) -> FloatArray:
        """Intercompartmental clearance Q3 = k13 V1 (L/min)."""
        return self.k13_per_min * self.v1_l

    def take(self, index: int | Sequence[int] | npt.NDArray[np.intp]) -> PkModel:
        """The sub-batch of patients at ``index`` (an int gives a batch of one)."""
        idx = np.atleast_1d(np.asarray(index, dtype=np.intp))
        return PkModel(
            self.v1_l[idx],
            self.k10_per_min[idx],
            self.k12_per_min[idx],
            self.k21_per_min[idx],
            self.k13_per_min[idx],
            self.k31_per_min[idx],
            None if self.ke0_per_min is None else self.ke0_per_min[idx],
        )

    def with_ke0(self, ke0_per_min: ArrayLike | None) -> PkModel:
        """The same disposition with another effect-site rate constant (1/min)."""
        return PkModel(
            self.v1_l,
            self.k10_per_min,
            self.k12_per_min,
            self.k21_per_min,
            self.k13_per_min,
            self.k31_per_min,
            ke0_per_min,
        )

    def as_dict(self) -> dict[str, list[float] | None]:
        """JSON-friendly parameters with derived volumes and clearances."""
        out: dict[str, list[float] | None] = {
            "v1_l": self.v1_l.tolist(),
            "v2_l": self.v2_l.tolist(),
            "v3_l": self.v3_l.tolist(),
            "cl_l_min": self.cl_l_min.tolist(),
            "q2_l_min": self.q2_l_min.tolist(),
            "q3_l_min": self.q3_l_min.tolist(),
            "k10_per_min": self.k10_per_min.tolist(),
            "k12_per_min": self.k12_per_min.tolist(),
            "k21_per_min": self.k21_per_min.tolist(),
            "k13_per_min": self.k13_per_min.tolist(),
            "k31_per_min": self.k31_per_min.tolist(),
            "ke0_per_min": None if self.ke0_per_min is None else self.ke0_per_min.tolist(),
        }
        return out


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _raise_first(name: str, values: FloatArray, bad: npt.NDArray[np.bool_], rule: str) -> None:
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        label = name if values.shape[0] == 1 else f"{name}[{i}]"
        raise InputError(label, float(values[i]), rule)


# ---- schedules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Schedule:
    """Drug input: a piecewise-constant infusion rate plus instantaneous boluses.

    ``rate_start_s`` (K,) strictly increasing times (s) at which ``rate_per_s`` (amount/s,
    shape (K,) or (K, N) per patient) starts; each rate holds until the next start (the
    rate before the first start is 0). ``bolus_at_s`` (B,) times (s) of ``bolus_amount``
    (amount, (B,) or (B, N)). Build with :meth:`build` from overlapping infusions.
    """

    rate_start_s: FloatArray
    rate_per_s: FloatArray
    bolus_at_s: FloatArray
    bolus_amount: FloatArray

    def __post_init__(self) -> None:
        for name in ("rate_start_s", "rate_per_s", "bolus_at_s", "bolus_amount"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for times, values, tname, vname in (
            (self.rate_start_s, self.rate_per_s, "rate_start_s", "rate_per_s"),
            (self.bolus_at_s, self.bolus_amount, "bolus_at_s", "bolus_amount"),
        ):
            if times.ndim != 1:
                raise InputError(tname, f"shape {times.shape}", "must be 1-D")
            if values.ndim not in (1, 2) or values.shape[0] != times.shape[0]:
                raise InputError(
                    vname, f"shape {values.shape}", f"must be ({tname} size,) or (.., N)"
                )
            _raise_first(
                tname, times, ~np.isfinite(times) | (times < 0), "must be finite and >= 0 s"
            )
            ok = np.isfinite(values) & (values >= 0)
            bad_rows = ~ok if values.ndim == 1 else ~np.all(ok, axis=1)
            if np.any(bad_rows):
                i = int(np.flatnonzero(bad_rows)[0])
                raise InputError(f"{vname}[{i}]", values[i].tolist(), "must be finite and >= 0")
        if self.rate_start_s.size > 1 and np.any(np.diff(self.rate_start_s) <= 0):
            raise InputError(
                "rate_start_s", self.rate_start_s.tolist(), "must be strictly increasing"
            )

    @classmethod
    def build(
        cls,
        infusions: Iterable[tuple[float, float, ArrayLike]] = (),
        boluses: Iterable[tuple[float, ArrayLike]] = (),
    ) -> Schedule:
        """From infusions ``(start_s, stop_s, rate_per_s)`` (overlaps add up) and boluses
        ``(at_s, amount)``; rates and amounts may be per-patient arrays (N,)."""
        items = [(float(a), float(b), np.asarray(r, dtype=np.float64)) for a, b, r in infusions]
        for i, (start, stop, _) in enumerate(items):
            if not (np.isfinite(start) and np.isfinite(stop) and 0 <= start < stop):
                raise InputError(
                    f"infusions[{i}]", f"{start:g}-{stop:g} s", "needs 0 <= start < stop"
                )
        breaks = np.unique(np.array([t for a, b, _ in items for t in (a, b)], dtype=np.float64))
        rate_shape = np.broadcast_shapes(*(r.shape for _, _, r in items)) if items else ()
        rates = np.zeros((breaks.size, *rate_shape), dtype=np.float64)
        for start, stop, rate in items:
            on = (breaks >= start) & (breaks < stop)
            rates[on] += rate
        bolus_list = [(float(t), np.asarray(d, dtype=np.float64)) for t, d in boluses]
        dose_shape = np.broadcast_shapes(*(d.shape for _, d in bolus_list)) if bolus_list else ()
        amounts = np.zeros((len(bolus_list), *dose_shape), dtype=np.float64)
        for i, (_, dose) in enumerate(bolus_list):
            amounts[i] = dose
        return cls(
            rate_start_s=breaks,
            rate_per_s=rates,
            bolus_at_s=np.array([t for t, _ in bolus_list], dtype=np.float64),
            bolus_amount=amounts,
        )

    def total_amount(self, until_s: float) -> FloatArray:
        """Amount given in [0, until_s] (boluses at until_s included), per patient."""
        total = np.zeros(1)
        if self.bolus_at_s.size:
            given = self.bolus_at_s <= until_s
            total = total + self.bolus_amount[given].sum(axis=0)
        if self.rate_start_s.size:
            ends = np.append(self.rate_start_s[1:], np.inf)
            span = np.clip(np.minimum(ends, until_s) - self.rate_start_s, 0.0, None)
            total = total + np.tensordot(span, self.rate_per_s, axes=(0, 0))
        return np.atleast_1d(np.asarray(total, dtype=np.float64))


# ---- exact solution ---------------------------------------------------------------------


class PkState(NamedTuple):
    """State at ``t_s``: compartment amounts (N, 3) (zeros for absent ones) and Ce (N,)."""

    t_s: float
    amounts: FloatArray
    ce: FloatArray


class PkResult(NamedTuple):
    """Concentrations on the grid: ``cp`` and ``ce`` have shape (N, len(t_s)), amount/L.

    A grid point at a bolus time includes that bolus (right-continuous). For a
    direct-effect model ``ce`` equals ``cp``.
    """

    t_s: FloatArray
    cp: FloatArray
    ce: FloatArray
    final: PkState


@dataclass(frozen=True, slots=True)
class _Modes:
    """Per-patient modal decomposition of the disposition matrix."""

    lam: FloatArray  # (N, n) eigenvalues, 1/min (<= 0)
    s: FloatArray  # (N, n, n) amounts = s @ y  (modal to amounts)
    s_inv: FloatArray  # (N, n, n)
    w0: FloatArray  # (N, n) first row of s = first column of s_inv (central mode weights)
    v1: FloatArray  # (N,)
    ke0: FloatArray | None  # (N,)


def _modes(model: PkModel) -> _Modes:
    n = model.compartments
    k10, k12, k21 = model.k10_per_min, model.k12_per_min, model.k21_per_min
    k13, k31 = model.k13_per_min, model.k31_per_min
    size = model.n_patients
    sym = np.zeros((size, n, n))
    scale = np.ones((size, n))
    sym[:, 0, 0] = -(k10 + k12 + k13)
    for j, (kout, kback) in enumerate(((k12, k21), (k13, k31))[: n - 1], start=1):
        coupling = np.sqrt(kout * kback)
        sym[:, 0, j] = coupling
        sym[:, j, 0] = coupling
        sym[:, j, j] = -kback
        # Amount scale of compartment j relative to the central one: sqrt(V_j / V1).
        present = kback > 0
        scale[present, j] = np.sqrt(kout[present] / kback[present])
    lam, vec = np.linalg.eigh(sym)
    s = scale[:, :, None] * vec
    s_inv = np.swapaxes(vec, 1, 2) / scale[:, None, :]
    return _Modes(
        lam=lam, s=s, s_inv=s_inv, w0=vec[:, 0, :].copy(), v1=model.v1_l, ke0=model.ke0_per_min
    )


def _phi1(z: FloatArray) -> FloatArray:
    """(e^z - 1)/z, 1 at z = 0; accurate for all z <= 0."""
    out = np.ones_like(z)
    nz = z != 0
    out[nz] = np.expm1(z[nz]) / z[nz]
    return out


def _dd1(a: FloatArray, b: FloatArray) -> FloatArray:
    """First divided difference of exp, (e^a - e^b)/(a - b), without cancellation."""
    return np.exp(np.maximum(a, b)) * _phi1(-np.abs(a - b))


def _dd2(x: FloatArray, y: FloatArray, z: FloatArray) -> FloatArray:
    """Second divided difference of exp at three points (any may coincide).

    Widest pair first: (dd1(max, mid) - dd1(mid, min)) / (max - min); below a spread of
    1e-2 a Taylor series about the mean (complete homogeneous polynomials, to order 4).
    """
    hi = np.maximum(np.maximum(x, y), z)
    lo = np.minimum(np.minimum(x, y), z)
    mid = x + y + z - hi - lo
    spread = hi - lo
    out = np.empty_like(spread)
    wide = spread >= 1e-2
    if np.any(wide):
        h, m, low = hi[wide], mid[wide], lo[wide]
        out[wide] = (_dd1(h, m) - _dd1(m, low)) / (h - low)
    narrow = ~wide
    if np.any(narrow):
        c = (x[narrow] + y[narrow] + z[narrow]) / 3.0
        d = np.stack((x[narrow] - c, y[narrow] - c, z[narrow] - c))
        p2 = (d**2).sum(axis=0)
        p3 = (d**3).sum(axis=0)
        p4 = (d**4).sum(axis=0)
        h4 = p2**2 / 8.0 + p4 / 4.0
        out[narrow] = np.exp(c) * (0.5 + p2 / 48.0 + p3 / 360.0 + h4 / 720.0)
    return out


def _evaluate(
    modes: _Modes,
    amounts0: FloatArray,
    ce0: FloatArray,
    rate_per_min: FloatArray,
    tau_min: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Cp and Ce (N, J) at times ``tau_min`` (N, J) after a state, under a constant rate."""
    lam = modes.lam[:, None, :]  # (N, 1, n)
    tau = tau_min[:, :, None]  # (N, J, 1)
    y0 = np.einsum("pij,pj->pi", modes.s_inv, amounts0)[:, None, :]  # (N, 1, n)
    w0 = modes.w0[:, None, :]
    rate = rate_per_min[:, None, None]
    lt = lam * tau
    decay = np.exp(lt)
    cp = (w0 * (decay * y0 + w0 * rate * tau * _phi1(lt))).sum(axis=2) / modes.v1[:, None]
    if modes.ke0 is None:
        return cp, cp
    ke0 = modes.ke0[:, None, None]
    kt = np.broadcast_to(-ke0 * tau, lt.shape)
    lt_b = np.broadcast_to(lt, kt.shape)
    first = _dd1(lt_b, kt)
    second = _dd2(lt_b, np.zeros_like(kt), kt)
    terms = w0 * (y0 * tau * first + w0 * rate * tau**2 * second)
    ce = np.exp(-modes.ke0[:, None] * tau_min) * ce0[:, None]
    ce = ce + (modes.ke0 / modes.v1)[:, None] * terms.sum(axis=2)
    return cp, ce


def _advance(
    modes: _Modes, amounts0: FloatArray, ce0: FloatArray, rate_per_min: FloatArray, dt_min: float
) -> tuple[FloatArray, FloatArray]:
    """Full state (amounts (N, n), Ce (N,)) after ``dt_min`` at a constant rate."""
    tau = np.full((amounts0.shape[0], 1), dt_min)
    lt = modes.lam * dt_min
    y0 = np.einsum("pij,pj->pi", modes.s_inv, amounts0)
    y = np.exp(lt) * y0 + modes.w0 * rate_per_min[:, None] * dt_min * _phi1(lt)
    amounts = np.einsum("pij,pj->pi", modes.s, y)
    _, ce = _evaluate(modes, amounts0, ce0, rate_per_min, tau)
    return amounts, ce[:, 0]


def _per_patient(values: FloatArray, n: int, name: str) -> FloatArray:
    """Schedule values (rows) for N patients: (K,) broadcast, (K, N) taken as is."""
    if values.ndim == 1:
        return np.repeat(values[:, None], n, axis=1)
    if values.shape[1] not in (1, n):
        raise InputError(
            name, f"shape {values.shape}", f"has {values.shape[1]} columns for {n} patients"
        )
    return np.broadcast_to(values, (values.shape[0], n))


def _transition(modes: _Modes, dt_min: float) -> FloatArray:
    """Exact one-step map (N, n+2, n+2) of the state [amounts, Ce, rate] over ``dt_min``."""
    n_pat, n_cmt = modes.lam.shape
    size = n_cmt + 2
    phi = np.zeros((n_pat, size, size))
    zeros, ones = np.zeros(n_pat), np.ones(n_pat)
    for col in range(size):
        a0 = np.zeros((n_pat, n_cmt))
        if col < n_cmt:
            a0[:, col] = 1.0
        ce0 = ones if col == n_cmt else zeros
        rate = ones if col == n_cmt + 1 else zeros
        amounts, ce = _advance(modes, a0, ce0, rate, dt_min)
        phi[:, :n_cmt, col] = amounts
        phi[:, n_cmt, col] = ce
    phi[:, n_cmt + 1, n_cmt + 1] = 1.0
    return phi


def _fill_segment(
    modes: _Modes,
    amounts0: FloatArray,
    ce0: FloatArray,
    rate_per_min: FloatArray,
    tau_s: FloatArray,
    cp_out: FloatArray,
    ce_out: FloatArray,
) -> None:
    """Cp and Ce at ``tau_s`` after a segment start (constant rate), written in place.

    A regular run of points is produced by repeated doubling with the exact one-step map
    (point j = Φ^j · first point: log2(run) batched products per block); otherwise every
    point is evaluated in closed form.
    """
    n_pat, n_cmt = modes.lam.shape
    count = tau_s.size
    if count == 0:
        return
    gaps = np.diff(tau_s[1:])
    regular = count >= 8 and np.all(np.abs(gaps - gaps[0]) <= 1e-9 * max(1.0, gaps[0]))
    if not regular or gaps[0] <= 0:
        step = max(1, _CHUNK_ELEMENTS // max(1, n_pat * n_cmt * 4))
        for a in range(0, count, step):
            b = min(count, a + step)
            tau = np.broadcast_to(tau_s[a:b] / _SECONDS_PER_MIN, (n_pat, b - a))
            cp_out[:, a:b], ce_out[:, a:b] = _evaluate(modes, amounts0, ce0, rate_per_min, tau)
        return
    tau = np.broadcast_to(tau_s[:2] / _SECONDS_PER_MIN, (n_pat, 2))
    cp_out[:, :2], ce_out[:, :2] = _evaluate(modes, amounts0, ce0, rate_per_min, tau)
    amounts, ce = _advance(modes, amounts0, ce0, rate_per_min, float(tau_s[1]) / _SECONDS_PER_MIN)
    state = np.concatenate((amounts, ce[:, None], rate_per_min[:, None]), axis=1)
    phi = _transition(modes, float(gaps.mean()) / _SECONDS_PER_MIN)
    block = int(min(count - 1, max(1, _CHUNK_ELEMENTS // max(1, n_pat * (n_cmt + 2)))))
    # Row-vector form: state_row @ Φᵀ, so each doubling is one batched GEMM per patient.
    powers_t = [np.swapaxes(phi, 1, 2)]  # powers_t[k] = (Φ^(2^k))ᵀ
    while (1 << len(powers_t)) < block:
        powers_t.append(np.matmul(powers_t[-1], powers_t[-1]))
    direct = modes.ke0 is None
    v1 = modes.v1[:, None]
    for first in range(1, count, block):
        size = min(block, count - first)
        run = np.empty((n_pat, size, n_cmt + 2))
        run[:, 0] = state
        filled, level = 1, 0
        while filled < size:
            take = min(filled, size - filled)
            run[:, filled : filled + take] = np.matmul(run[:, :take], powers_t[level])
            filled += take
            level += 1
        cp_out[:, first : first + size] = run[:, :, 0] / v1
        ce_out[:, first : first + size] = run[:, :, 0] / v1 if direct else run[:, :, n_cmt]
        state = np.matmul(run[:, -1:], powers_t[0])[:, 0]


def simulate(
    model: PkModel,
    schedule: Schedule,
    t_grid_s: ArrayLike,
    initial: PkState | None = None,
) -> PkResult:
    """Exact Cp and Ce (amount/L) of every patient on ``t_grid_s`` (s, non-decreasing).

    Starts from ``initial`` (default: drug-free at t = 0 s). Schedule events before the
    start are refused; events after the last grid point are ignored.
    """
    grid = _as_array("t_grid_s", t_grid_s)
    t0 = 0.0 if initial is None else float(initial.t_s)
    if grid.size == 0:
        raise InputError("t_grid_s", "[]", "needs at least one time")
    if not np.all(np.isfinite(grid)) or np.any(np.diff(grid) < 0) or grid[0] < t0:
        raise InputError(
            "t_grid_s",
            f"{grid[0]:g}..{grid[-1]:g} s",
            f"must be finite, non-decreasing and >= {t0:g} s",
        )
    for name, times in (
        ("rate_start_s", schedule.rate_start_s),
        ("bolus_at_s", schedule.bolus_at_s),
    ):
        if times.size and times.min() < t0:
            raise InputError(name, float(times.min()), f"is before the simulation start {t0:g} s")
    n_pat = model.n_patients
    n_cmt = model.compartments
    modes = _modes(model)
    rates = _per_patient(schedule.rate_per_s, n_pat, "rate_per_s") * _SECONDS_PER_MIN
    doses = _per_patient(schedule.bolus_amount, n_pat, "bolus_amount")

    amounts = np.zeros((n_pat, n_cmt))
    ce = np.zeros(n_pat)
    if initial is not None:
        amounts[:] = np.broadcast_to(initial.amounts, (n_pat, 3))[:, :n_cmt]
        ce[:] = np.broadcast_to(initial.ce, (n_pat,))
    t_end = float(grid[-1])
    events = np.concatenate(([t0], schedule.rate_start_s, schedule.bolus_at_s))
    bounds = np.unique(events[events <= t_end])
    cp_out = np.empty((n_pat, grid.size))
    ce_out = np.empty((n_pat, grid.size))
    for j, start in enumerate(bounds):
        stop = bounds[j + 1] if j + 1 < bounds.size else np.inf
        at = schedule.bolus_at_s == start
        if np.any(at):
            amounts[:, 0] += doses[at].sum(axis=0)
        k = int(np.searchsorted(schedule.rate_start_s, start, side="right")) - 1
        rate = rates[k] if k >= 0 else np.zeros(n_pat)
        lo = int(np.searchsorted(grid, start, side="left"))
        hi = int(np.searchsorted(grid, stop, side="left")) if np.isfinite(stop) else grid.size
        _fill_segment(
            modes, amounts, ce, rate, grid[lo:hi] - start, cp_out[:, lo:hi], ce_out[:, lo:hi]
        )
        seg_end = stop if np.isfinite(stop) else t_end
        amounts, ce = _advance(modes, amounts, ce, rate, (seg_end - start) / _SECONDS_PER_MIN)
    padded = np.zeros((n_pat, 3))
    padded[:, :n_cmt] = amounts
    if modes.ke0 is None:
        ce = padded[:, 0] / model.v1_l
    return PkResult(grid, cp_out, ce_out, PkState(t_end, padded, ce))


# ---- effect-site timing -----------------------------------------------------------------


def _bolus_gap(modes: _Modes, t_min: FloatArray) -> FloatArray:
    """Cp - Ce after a unit bolus at times t_min (N, J); it changes sign at the Ce peak."""
    n_pat, n_cmt = modes.lam.shape
    a0 = np.zeros((n_pat, n_cmt))
    a0[:, 0] = 1.0
    cp, ce = _evaluate(modes, a0, np.zeros(n_pat), np.zeros(n_pat), t_min)
    return cp - ce


def time_to_peak_effect_min(model: PkModel) -> FloatArray:
    """Time (min) from a bolus to the peak effect-site concentration, per patient.

    At the peak dCe/dt = ke0 (Cp - Ce) = 0; the root is bracketed on a log grid and
    refined by bisection to ~1e-12 min.
    """
    if model.ke0_per_min is None:
        raise InputError("ke0_per_min", None, "a direct-effect model has no effect-site peak")
    modes = _modes(model)
    n_pat = model.n_patients
    scan = np.geomspace(1e-4, 1e4, 481)
    gap = _bolus_gap(modes, np.broadcast_to(scan, (n_pat, scan.size)))
    negative = gap < 0
    if not np.all(negative.any(axis=1)):
        i = int(np.flatnonzero(~negative.any(axis=1))[0])
        raise InputError(
            "ke0_per_min", float(model.ke0_per_min[i]), "gives no effect-site peak within 10^4 min"
        )
    first = negative.argmax(axis=1)
    hi = scan[first]
    lo = np.where(first > 0, scan[np.maximum(first - 1, 0)], 0.0)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        below = _bolus_gap(modes, mid[:, None])[:, 0] < 0
        hi = np.where(below, mid, hi)
        lo = np.where(below, lo, mid)
    return np.asarray(0.5 * (lo + hi), dtype=np.float64)


def ke0_for_time_to_peak(model: PkModel, tpeak_min: ArrayLike) -> FloatArray:
    """The ke0 (1/min) that puts the effect-site peak after a bolus at ``tpeak_min``.

    The "tpeak" method (Minto CF et al., Anesthesiology 2003;99:324-33): the time to peak
    falls monotonically as ke0 rises, so bisection in log(ke0) over 1e-4..1e3 1/min.
    """
    target = np.broadcast_to(_as_array("tpeak_min", tpeak_min), (model.n_patients,))
    _raise_first("tpeak_min", np.asarray(target), ~(target > 0), "must be > 0 min")
    lo = np.full(model.n_patients, np.log(1e-4))
    hi = np.full(model.n_patients, np.log(1e3))
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        peak = time_to_peak_effect_min(model.with_ke0(np.exp(mid)))
        late = peak > target
        lo = np.where(late, mid, lo)
        hi = np.where(late, hi, mid)
    return np.asarray(np.exp(0.5 * (lo + hi)), dtype=np.float64)
