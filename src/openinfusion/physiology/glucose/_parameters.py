"""Parameter set of the UVA/Padova 2008 (S2008) virtual subjects, one array per parameter.

Equations: Dalla Man, Rizza, Cobelli, IEEE TBME 2007;54(10):1740-1749 (meal model) and
Dalla Man et al., JDST 2014;8(1):26-34 (simulator). Values: simglucose 0.2.11
``params/vpatient_params.csv`` and ``params/Quest.csv`` (MIT, (c) 2017 Jinyu Xie), shipped
unchanged in ``data/``. Every field is an array of shape (N,) and its name carries its unit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.errors import InputError

FloatArray = NDArray[np.float64]

SUBJECTS_FILE = "uva_padova_2008_subjects.csv"
THERAPY_FILE = "uva_padova_2008_therapy.csv"
N_STATES = 13
PMOL_PER_U = 6000.0  # insulin: 1 U = 6000 pmol (the convention of the UVA/Padova simulator)
MG_PER_G = 1000.0

# field name -> column in the subjects file. Units: mg, kg, dL, L, pmol, min.
_COLUMNS: dict[str, str] = {
    "body_weight_kg": "BW",
    "basal_glucose_mg_dl": "Gb",
    "basal_insulin_pmol_l": "Ib",
    "kabs_per_min": "kabs",  # intestinal absorption
    "kmax_per_min": "kmax",  # gastric emptying, maximum
    "kmin_per_min": "kmin",  # gastric emptying, minimum
    "b_fraction": "b",  # stomach content fraction where k_empt falls to (kmax+kmin)/2
    "d_fraction": "d",  # ... and where it is back at (kmax+kmin)/2
    "f_fraction": "f",  # fraction of intestinal absorption appearing in plasma
    "vg_dl_per_kg": "Vg",  # glucose distribution volume
    "vi_l_per_kg": "Vi",  # insulin distribution volume
    "k1_per_min": "k1",  # plasma -> tissue glucose
    "k2_per_min": "k2",  # tissue -> plasma glucose
    "vm0_mg_per_kg_min": "Vm0",  # insulin-dependent utilisation at basal insulin
    "vmx_mg_per_kg_min_per_pmol_l": "Vmx",  # its increase per pmol/L of insulin action
    "km0_mg_per_kg": "Km0",
    "p2u_per_min": "p2u",  # insulin action on utilisation, rate
    "kp1_mg_per_kg_min": "kp1",  # EGP at zero glucose and insulin
    "kp2_per_min": "kp2",  # EGP suppression by plasma glucose
    "kp3_mg_per_kg_min_per_pmol_l": "kp3",  # EGP suppression by delayed insulin
    "ki_per_min": "ki",  # delay of the insulin signal acting on EGP
    "fsnc_mg_per_kg_min": "Fsnc",  # insulin-independent utilisation
    "ke1_per_min": "ke1",  # renal excretion rate
    "ke2_mg_per_kg": "ke2",  # renal threshold (plasma glucose mass)
    "m1_per_min": "m1",  # liver -> plasma insulin
    "m2_per_min": "m2",  # plasma -> liver insulin
    "m4_per_min": "m4",  # peripheral insulin degradation
    "m30_per_min": "m30",  # hepatic insulin extraction
    "ka1_per_min": "ka1",  # subcutaneous compartment 1 -> plasma
    "ka2_per_min": "ka2",  # subcutaneous compartment 2 -> plasma
    "kd_per_min": "kd",  # subcutaneous compartment 1 -> 2
    "ksc_per_min": "ksc",  # plasma -> subcutaneous glucose
    "basal_insulin_pmol_per_kg_min": "u2ss",  # steady-state basal infusion
}
_STATE_COLUMNS = tuple(f"x0_{i:2d}" for i in range(1, N_STATES + 1))  # "x0_ 1" .. "x0_13"


def _read_rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("openinfusion.physiology.glucose").joinpath("data", filename)
    lines = [ln for ln in text.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@cache
def _tables() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    subjects = {row["Name"]: row for row in _read_rows(SUBJECTS_FILE)}
    therapy = {row["Name"]: row for row in _read_rows(THERAPY_FILE)}
    return subjects, therapy


def subject_names() -> tuple[str, ...]:
    """The 30 subject names in file order: adolescent#001-010, adult#001-010, child#001-010."""
    return tuple(_tables()[0])


@dataclass(frozen=True, eq=False)
class GlucoseParameters:
    """Per-subject parameters of N subjects; each numeric field has shape (N,)."""

    names: tuple[str, ...]
    initial_state: FloatArray  # (N, 13), steady state at the basal infusion
    body_weight_kg: FloatArray
    basal_glucose_mg_dl: FloatArray
    basal_insulin_pmol_l: FloatArray
    kabs_per_min: FloatArray
    kmax_per_min: FloatArray
    kmin_per_min: FloatArray
    b_fraction: FloatArray
    d_fraction: FloatArray
    f_fraction: FloatArray
    vg_dl_per_kg: FloatArray
    vi_l_per_kg: FloatArray
    k1_per_min: FloatArray
    k2_per_min: FloatArray
    vm0_mg_per_kg_min: FloatArray
    vmx_mg_per_kg_min_per_pmol_l: FloatArray
    km0_mg_per_kg: FloatArray
    p2u_per_min: FloatArray
    kp1_mg_per_kg_min: FloatArray
    kp2_per_min: FloatArray
    kp3_mg_per_kg_min_per_pmol_l: FloatArray
    ki_per_min: FloatArray
    fsnc_mg_per_kg_min: FloatArray
    ke1_per_min: FloatArray
    ke2_mg_per_kg: FloatArray
    m1_per_min: FloatArray
    m2_per_min: FloatArray
    m4_per_min: FloatArray
    m30_per_min: FloatArray
    ka1_per_min: FloatArray
    ka2_per_min: FloatArray
    kd_per_min: FloatArray
    ksc_per_min: FloatArray
    basal_insulin_pmol_per_kg_min: FloatArray
    carb_ratio_g_per_u: FloatArray  # therapy: grams covered by 1 U
    correction_factor_mg_dl_per_u: FloatArray  # therapy: BG drop per 1 U
    age_years: FloatArray
    total_daily_insulin_u: FloatArray

    @classmethod
    def from_names(cls, names: Iterable[str]) -> GlucoseParameters:
        """Parameters of the named subjects (e.g. ``"adult#001"``), in the order given."""
        subjects, therapy = _tables()
        chosen = list(names)
        if not chosen:
            raise InputError("names", chosen, "name at least one virtual subject")
        for name in chosen:
            if name not in subjects:
                raise InputError(
                    "name",
                    name,
                    "is not a UVA/Padova 2008 subject (adolescent#001-010, "
                    "adult#001-010, child#001-010)",
                )
        rows = [subjects[n] for n in chosen]
        quest = [therapy[n] for n in chosen]

        def col(key: str, table: Sequence[dict[str, str]] = rows) -> FloatArray:
            return np.array([float(r[key]) for r in table], dtype=np.float64)

        values = {name: col(column) for name, column in _COLUMNS.items()}
        state = np.array([[float(r[c]) for c in _STATE_COLUMNS] for r in rows], dtype=np.float64)
        return cls(
            names=tuple(chosen),
            initial_state=state,
            carb_ratio_g_per_u=col("CR", quest),
            correction_factor_mg_dl_per_u=col("CF", quest),
            age_years=col("Age", quest),
            total_daily_insulin_u=col("TDI", quest),
            **values,
        )

    @classmethod
    def all(cls) -> GlucoseParameters:
        """All 30 subjects in file order."""
        return cls.from_names(subject_names())

    def __len__(self) -> int:
        return len(self.names)

    def take(self, index: Sequence[int] | NDArray[np.intp]) -> GlucoseParameters:
        """The subjects at ``index`` (repeats allowed: a cohort may reuse a subject)."""
        idx = np.asarray(index, dtype=np.intp)
        changes: dict[str, Any] = {"names": tuple(self.names[i] for i in idx)}
        for f in fields(self):
            if f.name != "names":
                changes[f.name] = np.ascontiguousarray(getattr(self, f.name)[idx])
        return replace(self, **changes)

    @property
    def basal_u_per_h(self) -> FloatArray:
        """Basal insulin that holds the subject at steady state: u2ss·BW/6000 U/min, in U/h."""
        return self.basal_insulin_pmol_per_kg_min * self.body_weight_kg / PMOL_PER_U * 60.0
