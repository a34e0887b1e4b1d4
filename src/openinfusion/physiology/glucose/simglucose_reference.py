"""Run simglucose's own ``T1DPatient`` as the reference for parity checks and benchmarks.

Needs the development dependency ``simglucose`` (MIT, https://github.com/jxx123/simglucose);
nothing else in openinfusion imports it. Each subject is integrated the simglucose way:
one ``T1DPatient.step`` per minute (scipy ``ode``/dopri5, inputs constant over the minute,
announced carbohydrate eaten at 5 g/min), without CGM noise or pump rounding.

simglucose 0.2.11 imports ``gym`` 0.9.4 from its package ``__init__`` and ``pkg_resources``
from ``t1dpatient``; on an interpreter without setuptools both fail. ``load_t1dpatient``
therefore registers the package without running its ``__init__`` (the gym environments are
not needed) and, only if ``pkg_resources`` is missing, a stand-in that provides the one
function ``t1dpatient`` calls (``resource_filename``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def load_t1dpatient() -> types.ModuleType:
    """The ``simglucose.patient.t1dpatient`` module (raises ImportError if not installed)."""
    if "simglucose" not in sys.modules:
        spec = importlib.util.find_spec("simglucose")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("simglucose is not installed (uv sync installs the dev group)")
        sys.modules["simglucose"] = importlib.util.module_from_spec(spec)  # __init__ not run
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            return str(Path(sys.modules[package].__path__[0]) / resource)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    return importlib.import_module("simglucose.patient.t1dpatient")


@dataclass(frozen=True)
class ReferenceTrace:
    """simglucose's trajectory of one subject: values before minute 0 and after each minute."""

    bg_mg_dl: FloatArray  # plasma glucose Gp/Vg, shape (T + 1,)
    subcutaneous_mg_dl: FloatArray  # Gs/Vg (simglucose's Gsub), shape (T + 1,)
    state: FloatArray  # (T + 1, 13)


def run_simglucose(
    name: str,
    carbs_g_per_min: NDArray[Any],
    insulin_u_per_min: NDArray[Any],
    *,
    plain_parameters: bool = True,
) -> ReferenceTrace:
    """Integrate one subject with simglucose, one ``step`` per minute of the inputs (T,).

    With ``plain_parameters`` the subject's row of simglucose's own table is handed to
    ``T1DPatient`` as a namespace of floats instead of a pandas Series: the same values,
    equations and solver, about three times faster because simglucose reads every
    parameter by attribute inside its right-hand side. ``False`` runs it exactly as
    shipped (``T1DPatient.withName``), which is what the benchmark times.
    """
    module = load_t1dpatient()
    if plain_parameters:
        row = module.pd.read_csv(module.PATIENT_PARA_FILE).set_index("Name").loc[name]
        params = types.SimpleNamespace(Name=name, **{k: float(v) for k, v in row.items()})
        init = row.iloc[1:14].to_numpy(dtype=np.float64)  # x0_ 1..x0_13 (after column "i")
        patient = module.T1DPatient(params, init_state=init)
    else:
        patient = module.T1DPatient.withName(name)
    action = module.Action
    minutes = len(carbs_g_per_min)
    states = np.empty((minutes + 1, 13))
    states[0] = patient.state
    for t in range(minutes):
        patient.step(action(CHO=float(carbs_g_per_min[t]), insulin=float(insulin_u_per_min[t])))
        states[t + 1] = patient.state
    vg = float(patient._params.Vg)
    return ReferenceTrace(states[:, 3] / vg, states[:, 12] / vg, states)
