"""UVA/Padova 2008 glucose-insulin equations for a batch of subjects, and one RK4 step.

Equations: Dalla Man, Rizza, Cobelli, IEEE TBME 2007;54(10):1740-1749 (glucose, insulin
and oral glucose subsystems, nonlinear gastric emptying) with the subcutaneous insulin
and glucose compartments of the T1D simulator (Kovatchev et al., JDST 2009;3(1):44-55;
Dalla Man et al., JDST 2014;8(1):26-34), in the form simglucose 0.2.11 integrates.

Inside this module the state is laid out (13, N): one contiguous row per state variable,
so each term of the right-hand side is one NumPy operation over the whole batch.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from openinfusion.physiology.glucose._parameters import GlucoseParameters

FloatArray = NDArray[np.float64]


class State(IntEnum):
    """Index of each state variable (a column of the (N, 13) state), with its unit."""

    Q_STO1 = 0  # solid glucose in the stomach, mg
    Q_STO2 = 1  # liquid (ground) glucose in the stomach, mg
    Q_GUT = 2  # glucose in the intestine, mg
    GP = 3  # plasma glucose mass, mg/kg (BG = Gp/Vg, mg/dL)
    GT = 4  # glucose mass in slowly equilibrating tissue, mg/kg
    IP = 5  # plasma insulin mass, pmol/kg (I = Ip/Vi, pmol/L)
    X = 6  # insulin action on glucose utilisation (relative to basal), pmol/L
    I1 = 7  # first delay compartment of the insulin signal acting on EGP, pmol/L
    ID = 8  # delayed insulin signal acting on EGP, pmol/L
    IL = 9  # liver insulin mass, pmol/kg
    ISC1 = 10  # subcutaneous insulin, first compartment, pmol/kg
    ISC2 = 11  # subcutaneous insulin, second compartment, pmol/kg
    GS = 12  # subcutaneous glucose mass, mg/kg (Gs/Vg, mg/dL, is what a CGM senses)


N_STATES = len(State)

_MIN_DBAR_MG = 1.0  # a smaller meal reference Dbar counts as no meal (defect D5)

# States that are masses and therefore kept non-negative (defect D3 in docs/glucose-model.md).
_NONNEGATIVE_ROWS = (slice(State.GP, State.IP + 1), slice(State.IL, State.GS + 1))


class Rhs:
    """Right-hand side dx/dt (per minute) for N subjects, parameters bound once.

    ``floor_utilisation`` keeps the insulin-dependent utilisation Vm0 + Vmx·X at or above
    zero (defect D4); with it off the equations are exactly simglucose's.
    """

    def __init__(self, p: GlucoseParameters, *, floor_utilisation: bool = True) -> None:
        self.kmax = p.kmax_per_min
        self.kmin = p.kmin_per_min
        self.half_span = (p.kmax_per_min - p.kmin_per_min) / 2.0
        self.b = p.b_fraction
        self.d = p.d_fraction
        self.kabs = p.kabs_per_min
        self.ra_per_mg = p.f_fraction * p.kabs_per_min / p.body_weight_kg  # 1/(kg·min)
        self.kp1 = p.kp1_mg_per_kg_min
        self.kp2 = p.kp2_per_min
        self.kp3 = p.kp3_mg_per_kg_min_per_pmol_l
        self.fsnc = p.fsnc_mg_per_kg_min
        self.ke1 = p.ke1_per_min
        self.ke2 = p.ke2_mg_per_kg
        self.k1 = p.k1_per_min
        self.k2 = p.k2_per_min
        self.vm0 = p.vm0_mg_per_kg_min
        self.vmx = p.vmx_mg_per_kg_min_per_pmol_l
        self.km0 = p.km0_mg_per_kg
        self.m1 = p.m1_per_min
        self.m2 = p.m2_per_min
        self.m2_m4 = p.m2_per_min + p.m4_per_min
        self.m1_m30 = p.m1_per_min + p.m30_per_min
        self.ka1 = p.ka1_per_min
        self.ka2 = p.ka2_per_min
        self.kd = p.kd_per_min
        self.ka1_kd = p.ka1_per_min + p.kd_per_min
        self.p2u = p.p2u_per_min
        self.ib = p.basal_insulin_pmol_l
        self.inv_vi = 1.0 / p.vi_l_per_kg
        self.ki = p.ki_per_min
        self.ksc = p.ksc_per_min
        self.floor_utilisation = floor_utilisation
        n = len(p)
        # Inputs, constant over one minute: ``set_meal``; insulin written in place.
        self.meal_mg_per_min = np.zeros(n)
        self.insulin_pmol_per_kg_min = np.zeros(n)
        self.b_dbar = np.zeros(n)
        self.d_dbar = np.zeros(n)
        self.aa = np.zeros(n)
        self.cc = np.zeros(n)
        self._a, self._b, self._c = np.empty(n), np.empty(n), np.empty(n)

    def set_meal(self, meal_mg_per_min: FloatArray, dbar_mg: FloatArray) -> None:
        """Hold the meal input and the gastric-emptying reference amount Dbar (mg).

        Gastric emptying (Dalla Man 2007): with Dbar the glucose of the current meal,
        aa = 5/(2·Dbar·(1−b)) and cc = 5/(2·Dbar·d). With no meal yet (Dbar = 0)
        aa = cc = 0, which gives k_empt = kmax (as simglucose does); so does a "meal" under
        1 mg, whose aa and cc would overflow.
        """
        self.meal_mg_per_min = meal_mg_per_min
        has_meal = dbar_mg >= _MIN_DBAR_MG
        safe = np.where(has_meal, dbar_mg, 1.0)
        self.aa = np.where(has_meal, 2.5 / (safe * (1.0 - self.b)), 0.0)
        self.cc = np.where(has_meal, 2.5 / (safe * self.d), 0.0)
        self.b_dbar = self.b * dbar_mg
        self.d_dbar = self.d * dbar_mg

    def __call__(self, x: FloatArray, dx: FloatArray) -> FloatArray:
        """Write dx/dt of the (13, N) state ``x`` into ``dx`` and return it.

        Written with ``out=`` buffers: at N ≈ 1000 the cost is the number of NumPy calls.
        """
        q_sto1, q_sto2, q_gut, gp, gt, ip, ins_x, i1, i_d, il, isc1, isc2, gs = x
        d_sto1, d_sto2, d_gut, d_gp, d_gt, d_ip, d_x, d_i1, d_id, d_il, d_isc1, d_isc2, d_gs = dx
        a, b, c = self._a, self._b, self._c
        mul, sub, add = np.multiply, np.subtract, np.add

        # Gastric emptying k_empt = kmin + (kmax−kmin)/2·(tanh(aa(q−b·Dbar)) − tanh(cc(q−d·Dbar)) + 2)
        #                         = kmax + (kmax−kmin)/2·(tanh(...) − tanh(...)).
        q_sto = add(q_sto1, q_sto2, out=c)
        sub(q_sto, self.b_dbar, out=a)
        mul(a, self.aa, out=a)
        np.tanh(a, out=a)
        sub(q_sto, self.d_dbar, out=b)
        mul(b, self.cc, out=b)
        np.tanh(b, out=b)
        sub(a, b, out=a)
        mul(a, self.half_span, out=a)
        add(a, self.kmax, out=a)  # k_empt, 1/min
        mul(a, q_sto2, out=a)  # emptied into the gut, mg/min
        mul(self.kmax, q_sto1, out=b)  # solid -> liquid, mg/min
        sub(self.meal_mg_per_min, b, out=d_sto1)
        sub(b, a, out=d_sto2)
        mul(self.kabs, q_gut, out=b)
        sub(a, b, out=d_gut)

        # Plasma glucose: EGP = max(kp1 − kp2·Gp − kp3·Id, 0) + Ra − Uii − E − k1·Gp + k2·Gt,
        # renal excretion E = ke1·max(Gp − ke2, 0).
        mul(self.kp2, gp, out=a)
        sub(self.kp1, a, out=a)
        mul(self.kp3, i_d, out=b)
        sub(a, b, out=a)
        np.maximum(a, 0.0, out=a)  # EGP
        mul(self.ra_per_mg, q_gut, out=b)
        add(a, b, out=a)
        sub(a, self.fsnc, out=a)
        sub(gp, self.ke2, out=b)
        np.maximum(b, 0.0, out=b)
        mul(b, self.ke1, out=b)
        sub(a, b, out=a)
        mul(self.k1, gp, out=b)
        mul(self.k2, gt, out=c)
        sub(b, c, out=b)  # plasma -> tissue, mg/kg/min
        sub(a, b, out=d_gp)
        # Tissue glucose: k1·Gp − k2·Gt − (Vm0 + Vmx·X)·Gt/(Km0 + Gt).
        mul(self.vmx, ins_x, out=a)
        add(a, self.vm0, out=a)
        if self.floor_utilisation:
            np.maximum(a, 0.0, out=a)
        mul(a, gt, out=a)
        add(self.km0, gt, out=c)
        np.divide(a, c, out=a)
        sub(b, a, out=d_gt)

        # Insulin: plasma, liver, subcutaneous depot; actions X (utilisation) and I1, Id (EGP).
        mul(ip, self.inv_vi, out=c)  # plasma insulin concentration, pmol/L
        mul(self.m1, il, out=a)
        mul(self.ka1, isc1, out=b)
        add(a, b, out=a)
        mul(self.ka2, isc2, out=b)
        add(a, b, out=a)
        mul(self.m2_m4, ip, out=b)
        sub(a, b, out=d_ip)
        sub(c, self.ib, out=a)
        sub(a, ins_x, out=a)
        mul(a, self.p2u, out=d_x)
        sub(c, i1, out=a)
        mul(a, self.ki, out=d_i1)
        sub(i1, i_d, out=a)
        mul(a, self.ki, out=d_id)
        mul(self.m2, ip, out=a)
        mul(self.m1_m30, il, out=b)
        sub(a, b, out=d_il)
        mul(self.ka1_kd, isc1, out=a)
        sub(self.insulin_pmol_per_kg_min, a, out=d_isc1)
        mul(self.kd, isc1, out=a)
        mul(self.ka2, isc2, out=b)
        sub(a, b, out=d_isc2)
        sub(gp, gs, out=a)
        mul(a, self.ksc, out=d_gs)
        return dx


class Rk4:
    """Classic fixed-step Runge-Kutta 4 over the batch, ``substeps`` steps per minute."""

    def __init__(self, rhs: Rhs, n: int, substeps: int) -> None:
        self.rhs = rhs
        self.h = 1.0 / substeps
        self.substeps = substeps
        self._k = [np.empty((N_STATES, n)) for _ in range(4)]
        self._tmp = np.empty((N_STATES, n))
        self._acc = np.empty((N_STATES, n))

    def minute(self, x: FloatArray) -> None:
        """Advance the (13, N) state ``x`` in place by one minute of constant inputs."""
        f, h = self.rhs, self.h
        k1, k2, k3, k4 = self._k
        tmp, acc = self._tmp, self._acc
        for _ in range(self.substeps):
            f(x, k1)
            np.multiply(k1, 0.5 * h, out=tmp)
            tmp += x
            f(tmp, k2)
            np.multiply(k2, 0.5 * h, out=tmp)
            tmp += x
            f(tmp, k3)
            np.multiply(k3, h, out=tmp)
            tmp += x
            f(tmp, k4)
            np.add(k2, k3, out=acc)
            acc *= 2.0
            acc += k1
            acc += k4
            acc *= h / 6.0
            x += acc
        for rows in _NONNEGATIVE_ROWS:
            np.maximum(x[rows], 0.0, out=x[rows])
