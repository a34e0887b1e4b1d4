"""The one permission matrix: which role may do what. Every endpoint checks one permission.

Roles follow least privilege: clinicians act on infusions, the pharmacist on libraries,
biomedical engineering on devices, the administrator on accounts and the audit trail, and
``monitor`` (a central-station screen) only reads, and ``interface`` is the hospital's
integration engine (HL7/FHIR): it submits EHR orders, which are only ever pre-populated on a
pump, and reads what the chart needs. No role has every permission.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    PHARMACIST = "pharmacist"
    BIOMED = "biomed"
    ADMIN = "admin"
    MONITOR = "monitor"
    INTERFACE = "interface"


class Perm(StrEnum):
    PUMPS_READ = "pumps:read"
    PUMPS_MANAGE = "pumps:manage"  # assign a care unit, decommission
    MESSAGES_READ = "messages:read"
    ALARMS_READ = "alarms:read"
    ALARMS_ACK = "alarms:ack"
    INFUSIONS_READ = "infusions:read"
    COMMANDS_CLINICAL = "commands:clinical"  # pause, resume, stop, titrate, program
    COMMANDS_LIBRARY = "commands:library"  # activate_library
    COMMANDS_READ = "commands:read"
    EVENTS_READ = "events:read"
    ENROL = "enrolment:issue"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    LIBRARIES_READ = "libraries:read"
    LIBRARIES_PUBLISH = "libraries:publish"  # upload a package signed by a pharmacist
    PATIENTS_READ = "patients:read"
    PATIENTS_MANAGE = "patients:manage"  # admit (create), weight, height, care unit
    ASSOCIATIONS_MANAGE = "associations:manage"  # which patient a pump channel infuses
    ORDERS_READ = "orders:read"  # EHR infusion orders and their status on the pump
    ORDERS_SUBMIT = "orders:submit"  # send an order (pre-populated, confirmed at the bedside)
    INTEROP_READ = "interop:read"  # HL7/FHIR link state: outbound queue, last errors
    ANALYTICS_READ = "analytics:read"  # DERS compliance, overrides, alarm burden reports
    MAINTENANCE_READ = "maintenance:read"  # fleet telemetry and the maintenance queue


# Clinicians read a pump's message history (its infusion chart, CGM and implant readings
# for home monitoring); unit scoping (C-11) still limits them to their own pumps.
_CLINICAL_READ = {
    Perm.LIBRARIES_READ,
    Perm.PUMPS_READ,
    Perm.MESSAGES_READ,
    Perm.ALARMS_READ,
    Perm.INFUSIONS_READ,
    Perm.COMMANDS_READ,
    Perm.EVENTS_READ,
    Perm.PATIENTS_READ,
    Perm.ORDERS_READ,
}
# Those at the bedside record patients and connect them to pump channels.
_BEDSIDE = {Perm.ALARMS_ACK, Perm.COMMANDS_CLINICAL, Perm.PATIENTS_MANAGE, Perm.ASSOCIATIONS_MANAGE}

MATRIX: dict[Role, frozenset[Perm]] = {
    Role.NURSE: frozenset(_CLINICAL_READ | _BEDSIDE),
    Role.PHYSICIAN: frozenset(_CLINICAL_READ | _BEDSIDE | {Perm.ORDERS_SUBMIT}),
    Role.PHARMACIST: frozenset(
        _CLINICAL_READ | {Perm.COMMANDS_LIBRARY, Perm.LIBRARIES_PUBLISH, Perm.ANALYTICS_READ}
    ),
    Role.BIOMED: frozenset(
        {
            Perm.PUMPS_READ,
            Perm.MESSAGES_READ,
            Perm.ALARMS_READ,
            Perm.COMMANDS_READ,
            Perm.EVENTS_READ,
            Perm.ENROL,
            Perm.COMMANDS_LIBRARY,
            Perm.LIBRARIES_READ,
            Perm.PUMPS_MANAGE,
            Perm.INTEROP_READ,
            Perm.ANALYTICS_READ,
            Perm.MAINTENANCE_READ,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Perm.PUMPS_READ,
            Perm.MESSAGES_READ,
            Perm.ALARMS_READ,
            Perm.COMMANDS_READ,
            Perm.EVENTS_READ,
            Perm.ENROL,
            Perm.USERS_MANAGE,
            Perm.AUDIT_READ,
            Perm.LIBRARIES_READ,
            Perm.PUMPS_MANAGE,
            Perm.INTEROP_READ,
            Perm.ANALYTICS_READ,
            Perm.MAINTENANCE_READ,
        }
    ),
    Role.MONITOR: frozenset(_CLINICAL_READ),
    Role.INTERFACE: frozenset(
        {
            Perm.ORDERS_SUBMIT,
            Perm.ORDERS_READ,
            Perm.PATIENTS_READ,
            Perm.PATIENTS_MANAGE,
            Perm.PUMPS_READ,
            Perm.INFUSIONS_READ,
            Perm.ALARMS_READ,
            Perm.LIBRARIES_READ,
            Perm.INTEROP_READ,
        }
    ),
}

# Roles whose view may be limited to one care unit (user.unit set): those at the bedside.
UNIT_SCOPED_ROLES = frozenset({Role.NURSE, Role.PHYSICIAN, Role.MONITOR})

# Which permission a remote command action needs.
ACTION_PERMISSION: dict[str, Perm] = {
    "pause": Perm.COMMANDS_CLINICAL,
    "resume": Perm.COMMANDS_CLINICAL,
    "stop": Perm.COMMANDS_CLINICAL,
    "titrate": Perm.COMMANDS_CLINICAL,
    "program": Perm.COMMANDS_CLINICAL,
    "silence_remote_view": Perm.COMMANDS_CLINICAL,
    "activate_library": Perm.COMMANDS_LIBRARY,
}


def allowed(role: str, perm: Perm) -> bool:
    """True when ``role`` holds ``perm`` (an unknown role holds nothing)."""
    try:
        return perm in MATRIX[Role(role)]
    except ValueError:
        return False


def role_names() -> list[str]:
    return [r.value for r in Role]
