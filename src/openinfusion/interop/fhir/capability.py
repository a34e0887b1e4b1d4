"""The CapabilityStatement (``GET /fhir/metadata``): exactly what this face implements.

The same table drives the search-parameter checks of the endpoints, so the statement
cannot claim a parameter the server refuses or leave out one it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from openinfusion import __version__
from openinfusion.interop.fhir.codes import (
    PROFILE_MDS,
    PROFILE_NUMERIC_METRIC,
    PROFILE_NUMERIC_OBSERVATION,
    PROFILE_VMD,
)
from openinfusion.interop.fhir.search import DEFAULT_COUNT, MAX_COUNT
from openinfusion.server.clock import iso

FHIR_VERSION = "4.0.1"


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    kind: str
    interactions: tuple[str, ...]
    params: dict[str, tuple[str, str]]  # name -> (type, what it matches)
    permission: str
    profiles: tuple[str, ...] = ()


SPECS: dict[str, ResourceSpec] = {
    s.kind: s
    for s in (
        ResourceSpec(
            "Device",
            ("read", "search-type"),
            {
                "identifier": (
                    "token",
                    "the pump's serial number (system urn:openinfusion:pump-serial)",
                ),
                "patient": ("reference", "the patient a channel's open association names"),
                "type": ("token", "MDC code: 69985 pump (MDS), 69986 channel (VMD)"),
            },
            "pumps:read",
            (PROFILE_MDS, PROFILE_VMD),
        ),
        ResourceSpec(
            "DeviceMetric",
            ("read", "search-type"),
            {
                "source": ("reference", "the pump (MDS Device)"),
                "parent": ("reference", "the channel Device"),
                "type": ("token", "MDC code of the metric"),
            },
            "pumps:read",
            (PROFILE_NUMERIC_METRIC,),
        ),
        ResourceSpec(
            "Observation",
            ("read", "search-type"),
            {
                "patient": ("reference", "the patient associated with the channel at the time"),
                "device": ("reference", "a DeviceMetric, a channel Device or a pump Device"),
                "code": ("token", "MDC code of the metric"),
                "date": ("date", "when the server received the pump's status report"),
            },
            "infusions:read",
            (PROFILE_NUMERIC_OBSERVATION,),
        ),
        ResourceSpec(
            "MedicationAdministration",
            ("read", "search-type"),
            {
                "patient": ("reference", "the patient associated with the channel at the start"),
                "device": ("reference", "a channel Device or a pump Device"),
            },
            "infusions:read",
        ),
        ResourceSpec(
            "MedicationRequest",
            ("read", "search-type", "create"),
            {
                "patient": ("reference", "the ordered-for patient"),
                "device": ("reference", "the target pump or channel (extension target-device)"),
                "status": ("token", "active | completed | stopped | cancelled"),
            },
            "orders:read (create: orders:submit)",
        ),
        ResourceSpec(
            "Patient",
            ("read", "search-type"),
            {"identifier": ("token", "the MRN (system urn:openinfusion:mrn)")},
            "patients:read",
        ),
    )
}


def search_params(kind: str) -> frozenset[str]:
    return frozenset(SPECS[kind].params)


def capability_statement(base: str, now: datetime) -> dict[str, Any]:
    resources = []
    for spec in SPECS.values():
        entry: dict[str, Any] = {
            "type": spec.kind,
            "interaction": [{"code": code} for code in spec.interactions],
            "searchParam": [
                {"name": name, "type": kind, "documentation": doc}
                for name, (kind, doc) in spec.params.items()
            ],
            "documentation": f"needs {spec.permission}",
        }
        if spec.profiles:
            entry["supportedProfile"] = list(spec.profiles)
        resources.append(entry)
    data = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": iso(now),
        "publisher": "openinfusion",
        "kind": "instance",
        "software": {"name": "openinfusion infusion management server", "version": __version__},
        "implementation": {
            "description": "FHIR R4 face of the infusion management server",
            "url": base,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    f"JSON only. Search paging: _count (default {DEFAULT_COUNT}, at most "
                    f"{MAX_COUNT}) and _offset; unknown search parameters are refused. An "
                    "accepted MedicationRequest is only pre-populated on the pump and waits "
                    "for a clinician's confirmation at the bedside."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Bearer tokens from POST /api/auth/token; each resource needs the "
                        "read permission named in its documentation."
                    ),
                },
                "resource": resources,
            }
        ],
    }
    out: dict[str, Any] = CapabilityStatement.model_validate(data).model_dump(
        mode="json", exclude_none=True
    )
    return out
