"""PCA respiratory safety interlock: a pure state machine over SpO2, EtCO2 and breathing rate.

Feed it timestamped readings with :meth:`PcaInterlock.update`; it answers with a
:class:`Decision`: pause the PCA (demands and basal), refuse demands only, or carry on,
with an alarm code and a reason. It never touches a pump: the caller acts (``Device.pause``,
``Device.resume``, not forwarding a demand). This is the ICE "PCA safety interlock" use case
and the commercial *PCA Pause Protocol* (BD Alaris EtCO2/PCA modules, HOSPITAL_REFERENCE.md
§"Alaris Guardrails": pause on capnography and breathing-rate limits, message "PCA Infusion
has paused due to a decline in respiratory status"). Guide: docs/heparin-and-pca-safety.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from openinfusion.errors import InputError

SPO2_LOW = "respiratory-spo2-low"
ETCO2_HIGH = "respiratory-etco2-high"
ETCO2_LOW = "respiratory-etco2-low"
RR_LOW = "respiratory-rate-low"
SENSOR_STALE = "respiratory-sensor-stale"

# Plausible ranges; a value outside counts as no reading (an artefact), never as normal.
_PLAUSIBLE = {"spo2": (0.0, 100.0), "etco2": (0.0, 200.0), "rr": (0.0, 120.0)}


def _real(name: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(name, value, "must be a number")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise InputError(name, value, f"must be {lo:g} to {hi:g}")
    return v


@dataclass(frozen=True)
class InterlockLimits:
    """Pause limits, each held for its duration (s) before it counts; ``None`` turns one off.

    Defaults (local, conservative): SpO2 < 90 % for 30 s, EtCO2 > 50 mmHg at once, rate
    < 8 /min for 60 s. ``stale_after_s``: a monitored sensor with no valid reading for longer
    is unsafe (``stale_action`` ``"refuse-demands"`` or ``"pause"``). Resume: by a clinician,
    or automatically after ``resume_after_normal_s`` of normal, fresh readings when
    ``auto_resume``.
    """

    spo2_low_pct: float | None = 90.0
    spo2_duration_s: float = 30.0
    etco2_high_mmhg: float | None = 50.0
    etco2_high_duration_s: float = 0.0
    etco2_low_mmhg: float | None = None
    etco2_low_duration_s: float = 30.0
    rr_low_bpm: float | None = 8.0
    rr_duration_s: float = 60.0
    stale_after_s: float = 60.0
    stale_action: str = "refuse-demands"
    auto_resume: bool = False
    resume_after_normal_s: float = 600.0

    def __post_init__(self) -> None:
        for name in (
            "spo2_duration_s",
            "etco2_high_duration_s",
            "etco2_low_duration_s",
            "rr_duration_s",
        ):
            _real(name, getattr(self, name), 0.0, 3600.0)
        _real("stale_after_s", self.stale_after_s, 1.0, 3600.0)
        _real("resume_after_normal_s", self.resume_after_normal_s, 0.0, 24 * 3600.0)
        for name, key in (
            ("spo2_low_pct", "spo2"),
            ("etco2_high_mmhg", "etco2"),
            ("etco2_low_mmhg", "etco2"),
            ("rr_low_bpm", "rr"),
        ):
            value = getattr(self, name)
            if value is not None:
                _real(name, value, *_PLAUSIBLE[key])
        if self.stale_action not in ("refuse-demands", "pause"):
            raise InputError("stale_action", self.stale_action, "must be refuse-demands or pause")

    def channels(self) -> tuple[tuple[str, str, str, float, float], ...]:
        """The active limits: (alarm, sensor, direction, threshold, duration s)."""
        out = []
        if self.spo2_low_pct is not None:
            out.append((SPO2_LOW, "spo2", "below", self.spo2_low_pct, self.spo2_duration_s))
        if self.etco2_high_mmhg is not None:
            out.append(
                (ETCO2_HIGH, "etco2", "above", self.etco2_high_mmhg, self.etco2_high_duration_s)
            )
        if self.etco2_low_mmhg is not None:
            out.append(
                (ETCO2_LOW, "etco2", "below", self.etco2_low_mmhg, self.etco2_low_duration_s)
            )
        if self.rr_low_bpm is not None:
            out.append((RR_LOW, "rr", "below", self.rr_low_bpm, self.rr_duration_s))
        return tuple(out)


# BD Alaris adult profile values as HOSPITAL_REFERENCE.md records them: EtCO2 high 60 mmHg,
# low 10 mmHg, "PCA Pause Resp. Rate Lower Limit" 5 /min; no SpO2 value is recorded there.
ALARIS_ADULT_LIMITS = InterlockLimits(
    spo2_low_pct=None,
    etco2_high_mmhg=60.0,
    etco2_low_mmhg=10.0,
    rr_low_bpm=5.0,
    rr_duration_s=30.0,
)


class Mode(Enum):
    """Interlock state: monitoring, or PCA paused until resumed."""

    MONITORING = "monitoring"
    PAUSED = "paused"


@dataclass(frozen=True)
class Decision:
    """``pause``: stop basal and demands; ``refuse_demands``: do not grant a demand (true
    whenever paused, and on stale data); ``alarm``: active alarm code or None."""

    pause: bool
    alarm: str | None
    reason: str
    refuse_demands: bool = False
    mode: Mode = Mode.MONITORING


@dataclass
class PcaInterlock:
    """The interlock of one patient. Times are seconds, non-decreasing between calls."""

    limits: InterlockLimits = field(default_factory=InterlockLimits)
    mode: Mode = Mode.MONITORING
    t_s: float = -math.inf
    pause_alarm: str | None = None
    pause_reason: str = ""
    _since: dict[str, float] = field(default_factory=dict)  # alarm -> first out-of-limit t
    _last_valid: dict[str, float] = field(default_factory=dict)  # sensor -> t of last value
    _last_value: dict[str, float] = field(default_factory=dict)
    _normal_since: float | None = None
    _start_s: float | None = None

    def _sensors(self) -> set[str]:
        return {c[1] for c in self.limits.channels()}

    def update(
        self, t_s: float, spo2: float | None, etco2: float | None, rr: float | None
    ) -> Decision:
        """Take the readings at ``t_s`` (None or NaN: no reading) and decide."""
        t = _real("t_s", t_s, -1e12, 1e12)
        if t < self.t_s:
            raise InputError("t_s", t_s, f"must not go back in time (last {self.t_s:g} s)")
        self.t_s = t
        if self._start_s is None:
            self._start_s = t
        values = {"spo2": spo2, "etco2": etco2, "rr": rr}
        fresh: dict[str, float] = {}
        for name, v in values.items():
            lo, hi = _PLAUSIBLE[name]
            if v is None or isinstance(v, bool) or not isinstance(v, int | float):
                continue
            fv = float(v)
            if math.isfinite(fv) and lo <= fv <= hi:
                fresh[name] = fv
                self._last_valid[name] = t
                self._last_value[name] = fv
        # out-of-limit runs: a valid in-limit reading ends a run; no reading leaves it open
        crossed: list[str] = []
        out_now = False
        for alarm, sensor, direction, threshold, duration in self.limits.channels():
            if sensor in fresh:
                v = fresh[sensor]
                out = v < threshold if direction == "below" else v > threshold
                if out:
                    self._since.setdefault(alarm, t)
                else:
                    self._since.pop(alarm, None)
            if alarm in self._since:
                out_now = True
                if t - self._since[alarm] >= duration:
                    crossed.append(alarm)
        stale = sorted(
            s
            for s in self._sensors()
            if t - self._last_valid.get(s, -math.inf) > self.limits.stale_after_s
            or s not in self._last_valid
        )
        if crossed or stale or out_now:
            self._normal_since = None
        elif self._normal_since is None:
            self._normal_since = t
        if crossed:
            if self.mode is Mode.MONITORING or self.pause_alarm == SENSOR_STALE:
                self.pause_alarm = crossed[0]
                self.pause_reason = self._describe(crossed)
            self.mode = Mode.PAUSED
        elif stale and self.limits.stale_action == "pause" and self.mode is Mode.MONITORING:
            self.mode = Mode.PAUSED
            self.pause_alarm = SENSOR_STALE
            self.pause_reason = f"no valid reading from {', '.join(stale)}"
        if self.mode is Mode.PAUSED and not crossed and not stale and self.limits.auto_resume:
            normal = self._normal_since
            if normal is not None and t - normal >= self.limits.resume_after_normal_s:
                self._resume()
                return Decision(False, None, "auto-resumed: readings normal", False)
        if self.mode is Mode.PAUSED:
            return Decision(True, self.pause_alarm, self.pause_reason, True, Mode.PAUSED)
        if stale:
            return Decision(False, SENSOR_STALE, f"no valid reading from {', '.join(stale)}", True)
        return Decision(False, None, "readings within limits", False)

    def _describe(self, crossed: list[str]) -> str:
        units = {"spo2": "%", "etco2": "mmHg", "rr": "/min"}
        parts = []
        for alarm, sensor, direction, threshold, duration in self.limits.channels():
            if alarm in crossed:
                v = self._last_value.get(sensor, math.nan)
                parts.append(
                    f"{sensor} {v:g} {units[sensor]} {direction} {threshold:g} for >= {duration:g} s"
                )
        return "PCA paused, decline in respiratory status: " + "; ".join(parts)

    def limit_crossed(self) -> bool:
        """Whether any limit is out of range now (held for its duration or not)."""
        return bool(self._since)

    def clinician_resume(self, t_s: float) -> bool:
        """A clinician resumes the PCA. Refused (False) while a limit is out of range or a
        sensor is stale; the caller then keeps the pump paused."""
        t = _real("t_s", t_s, self.t_s, 1e12)
        stale = any(
            t - self._last_valid.get(s, -math.inf) > self.limits.stale_after_s
            for s in self._sensors()
        )
        if self.mode is not Mode.PAUSED or self._since or stale:
            return False
        self._resume()
        return True

    def _resume(self) -> None:
        self.mode = Mode.MONITORING
        self.pause_alarm = None
        self.pause_reason = ""


__all__ = [
    "ALARIS_ADULT_LIMITS",
    "ETCO2_HIGH",
    "ETCO2_LOW",
    "RR_LOW",
    "SENSOR_STALE",
    "SPO2_LOW",
    "Decision",
    "InterlockLimits",
    "Mode",
    "PcaInterlock",
]
