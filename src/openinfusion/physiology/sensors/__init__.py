"""Sensor models: CGM, pulse oximetry and capnography, BIS. Seeded and vectorized over patients.

Each sensor has a batch form (``readings``, arrays ``(N, T)``) and a streaming form
(``measure(t_min, ...)``, arrays ``(N,)``) for closed loop; with the same seed, calling
``measure`` at the batch times gives the batch numbers exactly. See ``docs/sensors.md``.
"""

from openinfusion.physiology.sensors._common import Artefacts
from openinfusion.physiology.sensors.bis import BisMonitor, BisSpec
from openinfusion.physiology.sensors.cgm import (
    CGM_PRESETS,
    CgmDrift,
    CgmDropout,
    CgmPreset,
    CgmSensor,
    CompressionLows,
    johnson_su,
    lag_coefficients,
)
from openinfusion.physiology.sensors.respiratory import (
    BloodGases,
    CapnographSpec,
    GasExchange,
    PulseOximeterSpec,
    RespiratoryBaseline,
    RespiratoryMonitor,
    RespiratoryReadings,
    alveolar_po2_mmhg,
    severinghaus_saturation_pct,
    steady_paco2_mmhg,
)

__all__ = [
    "CGM_PRESETS",
    "Artefacts",
    "BisMonitor",
    "BisSpec",
    "BloodGases",
    "CapnographSpec",
    "CgmDrift",
    "CgmDropout",
    "CgmPreset",
    "CgmSensor",
    "CompressionLows",
    "GasExchange",
    "PulseOximeterSpec",
    "RespiratoryBaseline",
    "RespiratoryMonitor",
    "RespiratoryReadings",
    "alveolar_po2_mmhg",
    "johnson_su",
    "lag_coefficients",
    "severinghaus_saturation_pct",
    "steady_paco2_mmhg",
]
