"""Logical ids of the resources built from the server's rows, and their parsing.

| resource | id | from |
| --- | --- | --- |
| Device (pump, MDS) | ``{pump_id}`` | ``pumps`` |
| Device (channel, VMD) | ``{pump_id}-ch{n}`` | ``pumps``, channel ``n`` (1-based) |
| DeviceMetric | ``{pump_id}-ch{n}-{metric}`` | ``rate``, ``vol``, ``vtbi`` |
| Observation | ``{pump_id}-ch{n}-{metric}-{seq}`` | the status message ``seq`` of the pump |
| MedicationAdministration | ``{infusion id}`` | ``infusions`` |
| MedicationRequest | ``{order id}`` | ``infusion_orders`` |
| Patient | ``{patient id}`` | ``patients`` |

Pump ids are ``P-`` and 12 hex digits, so the suffixes cannot be confused with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openinfusion.interop.fhir.codes import METRICS

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 id datatype
_PUMP = r"(?P<pump>[A-Za-z0-9][A-Za-z0-9.\-]{0,39}?)"
_CHANNEL = re.compile(rf"^{_PUMP}-ch(?P<ch>[1-9][0-9]?)$")
_METRIC = re.compile(rf"^{_PUMP}-ch(?P<ch>[1-9][0-9]?)-(?P<metric>{'|'.join(METRICS)})$")
_OBSERVATION = re.compile(
    rf"^{_PUMP}-ch(?P<ch>[1-9][0-9]?)-(?P<metric>{'|'.join(METRICS)})-(?P<seq>[0-9]{{1,18}})$"
)
_NUMBER = re.compile(r"^[1-9][0-9]{0,17}$")


@dataclass(frozen=True, slots=True)
class DeviceId:
    pump_id: str
    channel: int | None  # None: the pump itself

    def __str__(self) -> str:
        return self.pump_id if self.channel is None else channel_id(self.pump_id, self.channel)


@dataclass(frozen=True, slots=True)
class MetricId:
    pump_id: str
    channel: int
    metric: str

    def __str__(self) -> str:
        return metric_id(self.pump_id, self.channel, self.metric)


@dataclass(frozen=True, slots=True)
class ObservationId:
    pump_id: str
    channel: int
    metric: str
    seq: int

    def __str__(self) -> str:
        return observation_id(self.pump_id, self.channel, self.metric, self.seq)


def channel_id(pump_id: str, channel: int) -> str:
    return f"{pump_id}-ch{channel}"


def metric_id(pump_id: str, channel: int, metric: str) -> str:
    return f"{pump_id}-ch{channel}-{metric}"


def observation_id(pump_id: str, channel: int, metric: str, seq: int) -> str:
    return f"{pump_id}-ch{channel}-{metric}-{seq}"


def parse_device_id(text: str) -> DeviceId | None:
    if not FHIR_ID.match(text):
        return None
    m = _CHANNEL.match(text)
    if m:
        return DeviceId(m["pump"], int(m["ch"]))
    return DeviceId(text, None)


def parse_metric_id(text: str) -> MetricId | None:
    m = _METRIC.match(text)
    return MetricId(m["pump"], int(m["ch"]), m["metric"]) if m else None


def parse_observation_id(text: str) -> ObservationId | None:
    m = _OBSERVATION.match(text)
    return ObservationId(m["pump"], int(m["ch"]), m["metric"], int(m["seq"])) if m else None


def parse_number_id(text: str) -> int | None:
    """A positive integer id (patients, infusions, orders), or None."""
    return int(text) if _NUMBER.match(text) else None
