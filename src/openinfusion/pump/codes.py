"""The one registry of pump alarm and event codes, each with its priority and meaning.

Like a flight-software component's declared events, a pump can raise only these codes.
Alarm priorities follow IEC 60601-1-8 (high: immediate response, red, fast flashing;
medium: prompt response, yellow; low: awareness, cyan). ``stops_flow`` says whether the
condition stops delivery (FAIL-SAFE) or lets it continue (e.g. KVO at VTBI complete,
battery low). IEEE 11073-10101 reference ids are given where IHE PCD uses them
(HOSPITAL_REFERENCE.md §4.3); the rest are documented in docs/pump.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class Priority(StrEnum):
    """IEC 60601-1-8 alarm priority."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"high": 3, "medium": 2, "low": 1}[self.value]


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    priority: Priority
    stops_flow: bool
    technical: bool
    meaning: str
    mdc: str | None = None


class Alarm(Enum):
    """Every alarm condition a channel or device can raise."""

    OCCLUSION_DOWNSTREAM = AlarmSpec(
        Priority.HIGH,
        True,
        False,
        "downstream pressure reached the occlusion limit",
        "MDC_EVT_FLUID_LINE_OCCL",
    )
    OCCLUSION_UPSTREAM = AlarmSpec(
        Priority.HIGH, True, False, "upstream occlusion or empty container"
    )
    AIR_IN_LINE = AlarmSpec(Priority.HIGH, True, False, "air bubble above the limit")
    AIR_ACCUMULATED = AlarmSpec(
        Priority.HIGH, True, False, "accumulated air over 15 min above the limit"
    )
    DISCONNECTION = AlarmSpec(
        Priority.HIGH, True, False, "line pressure fell: disconnection or leak suspected"
    )
    DOOR_OPEN = AlarmSpec(Priority.HIGH, True, False, "door open or set not loaded")
    SYRINGE_DISENGAGED = AlarmSpec(
        Priority.HIGH,
        True,
        False,
        "syringe plunger or barrel out of position",
        "MDC_EVT_SYRINGE_BARREL_CAPTURE_FAULT",
    )
    RESERVOIR_EMPTY = AlarmSpec(Priority.HIGH, True, False, "reservoir or syringe empty")
    RESERVOIR_LOW = AlarmSpec(Priority.LOW, False, False, "reservoir nearly empty")
    VTBI_COMPLETE = AlarmSpec(
        Priority.MEDIUM,
        False,
        False,
        "volume to be infused delivered (now at KVO or stopped)",
        "MDC_EVT_PUMP_DELIV_COMP",
    )
    NEAR_END = AlarmSpec(Priority.LOW, False, False, "infusion near end")
    BATTERY_LOW = AlarmSpec(Priority.MEDIUM, False, True, "battery low: connect to mains")
    BATTERY_DEPLETED = AlarmSpec(Priority.HIGH, True, True, "battery depleted: delivery stopped")
    SENSOR_FAULT = AlarmSpec(Priority.HIGH, True, True, "sensor failed its plausibility check")
    MOTOR_FAULT = AlarmSpec(Priority.HIGH, True, True, "drive did not deliver as commanded")
    PAUSED_TOO_LONG = AlarmSpec(Priority.MEDIUM, False, False, "paused too long: callback")
    CRASH_RECOVERED = AlarmSpec(
        Priority.HIGH,
        True,
        True,
        "restarted after an interruption: delivery paused, check the patient and the program",
    )
    DOSE_LIMIT = AlarmSpec(
        Priority.MEDIUM, False, False, "maximum dose over the time window reached"
    )
    PCA_PAUSED = AlarmSpec(Priority.HIGH, True, False, "PCA paused by respiratory monitoring")
    LEAK_SUSPECTED = AlarmSpec(
        Priority.HIGH, False, False, "reservoir volume at refill differs from expected"
    )
    ELECTIVE_REPLACEMENT = AlarmSpec(
        Priority.LOW, False, True, "battery at elective replacement indicator"
    )
    END_OF_SERVICE = AlarmSpec(Priority.HIGH, True, True, "battery at end of service")
    NO_COMMUNICATION = AlarmSpec(Priority.LOW, False, True, "no communication with the server")

    @property
    def code(self) -> str:
        return self.name.lower()

    @property
    def priority(self) -> Priority:
        return self.value.priority

    @property
    def stops_flow(self) -> bool:
        return self.value.stops_flow


class Event(StrEnum):
    """Every event a channel or device records (state changes and clinical actions)."""

    PROGRAMMED = "programmed"
    OVERRIDE = "override"
    DERS_ALERT = "ders_alert"  # a program DERS refused: hard block, or soft alert cancelled
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    STOPPED = "stopped"
    STANDBY = "standby"
    STEP_STARTED = "step_started"
    DELAY_STARTED = "delay_started"
    COMPLETE = "complete"
    KVO_STARTED = "kvo_started"
    TITRATED = "titrated"
    BOLUS_STARTED = "bolus_started"
    BOLUS_COMPLETE = "bolus_complete"
    BOLUS_CANCELLED = "bolus_cancelled"
    SECONDARY_STARTED = "secondary_started"
    SECONDARY_COMPLETE = "secondary_complete"
    TEMP_BASAL_STARTED = "temp_basal_started"
    TEMP_BASAL_ENDED = "temp_basal_ended"
    SUSPENDED = "suspended"
    PCA_GRANTED = "pca_granted"
    PCA_DENIED = "pca_denied"
    ALARM = "alarm"
    ALARM_CLEARED = "alarm_cleared"
    ALARM_SILENCED = "alarm_silenced"
    ALARM_ACKNOWLEDGED = "alarm_acknowledged"
    OCCLUSION_RELEASED = "occlusion_released"
    BACKOFF = "backoff"
    REFILLED = "refilled"
    FAULT_INJECTED = "fault_injected"
    FAULT_CLEARED = "fault_cleared"
    POWER = "power"
    RECOVERED = "recovered"
    CLOCK_JUMP = "clock_jump"
    SELF_TEST = "self_test"  # periodic self-test results (maintenance telemetry)
