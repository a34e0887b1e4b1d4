"""The FHIR R4 face: CapabilityStatement, Device/DeviceMetric per the PoCD IG, Observations
from the pumps' status reports, MedicationAdministration from infusions, Patient, and
MedicationRequest read, search and create (only ever pre-populated on the pump). Every
response body is parsed back with the fhir.resources R4B models."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from openinfusion.interop.fhir.capability import SPECS
from openinfusion.interop.fhir.codes import (
    EXT_BEDSIDE,
    EXT_CONCENTRATION,
    EXT_TARGET_DEVICE,
    MDC,
    MRN_SYSTEM,
    PUMP_SERIAL_SYSTEM,
    UCUM,
)
from openinfusion.interop.fhir.search import MAX_COUNT
from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.server.app import create_app
from openinfusion.server.models import Command
from openinfusion.server.permissions import Role
from tests.interop.test_orders import UNIT, OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    login,
    make_settings,
)

_n = itertools.count(1)
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def fenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("fhir")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def parsed(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The body, checked to be a valid R4 resource of the type it names (R4B models)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = r.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def outcome(r: httpx.Response, status: int) -> list[dict[str, Any]]:
    body = parsed(r, status)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["severity"] == "error" for i in body["issue"])
    return list(body["issue"])


def entries(bundle: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    found = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    if kind is not None:
        assert all(r["resourceType"] == kind for r in found)
    return found


def get(env: OrderEnv, path: str, role: Role = Role.NURSE, **params: Any) -> dict[str, Any]:
    return parsed(env.client.get(path, params=params, headers=env.h[role]))


def running(env: OrderEnv, pump_id: str, **fields: Any) -> int:
    return env.status(
        pump_id,
        state="running",
        drug="dopamine",
        dose=5.0,
        dose_unit="mcg/kg/min",
        rate_ml_h=15.0,
        vtbi_remaining_ml=200.0,
        **fields,
    )


def test_metadata_is_public_and_lists_exactly_what_is_served(fenv: OrderEnv) -> None:
    cs = parsed(fenv.client.get("/fhir/metadata"))
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    assert "json" in cs["format"] and "application/fhir+json" in cs["format"]
    listed = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert set(listed) == set(SPECS)
    schema = fenv.client.get("/openapi.json").json()["paths"]
    served = {p.split("/")[2] for p in schema if p.startswith("/fhir/") and p != "/fhir/metadata"}
    assert served == set(listed)
    assert {i["code"] for i in listed["MedicationRequest"]["interaction"]} == {
        "read",
        "search-type",
        "create",
    }
    assert "post" in schema["/fhir/MedicationRequest"]
    for kind, entry in listed.items():
        assert {p["name"] for p in entry["searchParam"]} == set(SPECS[kind].params)
        if "read" in {i["code"] for i in entry["interaction"]}:
            (read,) = [p for p in schema if p.startswith(f"/fhir/{kind}/{{")]
            assert "get" in schema[read]


def test_pump_and_channels_as_pocd_devices(fenv: OrderEnv) -> None:
    pump_id, serial, patient = fenv.bed()
    pump = get(fenv, f"/fhir/Device/{pump_id}")
    assert pump["identifier"][0] == {
        "type": pump["identifier"][0]["type"],
        "system": PUMP_SERIAL_SYSTEM,
        "value": serial,
    }
    assert pump["type"]["coding"][0] == {
        "system": MDC,
        "code": "69985",
        "display": "MDC_DEV_PUMP_INFUS_MDS",
    }
    assert pump["status"] == "active" and pump["serialNumber"] == serial
    assert pump["patient"] == {"reference": f"Patient/{patient['id']}"}
    assert pump["version"][0]["value"] == fenv.library_version
    ch1 = get(fenv, f"/fhir/Device/{pump_id}-ch1")
    assert ch1["parent"] == {"reference": f"Device/{pump_id}"}
    assert ch1["type"]["coding"][0]["code"] == "69986"
    assert ch1["patient"] == {"reference": f"Patient/{patient['id']}"}
    ch2 = get(fenv, f"/fhir/Device/{pump_id}-ch2")
    assert "patient" not in ch2
    # search by serial, by type and by patient
    found = entries(
        get(fenv, "/fhir/Device", identifier=f"{PUMP_SERIAL_SYSTEM}|{serial}"), "Device"
    )
    assert [d["id"] for d in found] == [pump_id]
    assert entries(get(fenv, "/fhir/Device", identifier=f"urn:other|{serial}")) == []
    by_patient = entries(get(fenv, "/fhir/Device", patient=f"Patient/{patient['id']}"))
    assert sorted(d["id"] for d in by_patient) == sorted([pump_id, f"{pump_id}-ch1"])
    channels = get(fenv, "/fhir/Device", type=f"{MDC}|69986", _count=MAX_COUNT)
    assert all(d["id"].rsplit("-", 1)[-1].startswith("ch") for d in entries(channels))
    assert channels["total"] >= 2
    # past the last channel, or an unknown id: 404 OperationOutcome
    outcome(fenv.client.get(f"/fhir/Device/{pump_id}-ch3", headers=fenv.h[Role.NURSE]), 404)
    outcome(fenv.client.get("/fhir/Device/P-000000000000", headers=fenv.h[Role.NURSE]), 404)


def test_decommissioned_pump_is_an_inactive_device(fenv: OrderEnv) -> None:
    pump_id, serial = fenv.pump()
    r = fenv.client.delete(f"/api/pumps/{pump_id}", headers=fenv.h[Role.BIOMED])
    assert r.status_code == 204
    pump = get(fenv, f"/fhir/Device/{pump_id}", Role.BIOMED)
    assert pump["status"] == "inactive" and pump["serialNumber"] == serial
    metric = get(fenv, f"/fhir/DeviceMetric/{pump_id}-ch1-rate", Role.BIOMED)
    assert metric["operationalStatus"] == "off"


def test_device_metrics_follow_pocd(fenv: OrderEnv) -> None:
    pump_id, _serial, _patient = fenv.bed()
    running(fenv, pump_id)
    rate = get(fenv, f"/fhir/DeviceMetric/{pump_id}-ch1-rate")
    assert rate["type"]["coding"][0]["code"] == "157784"
    assert rate["unit"]["coding"][0]["code"] == "265266"
    assert rate["source"] == {"reference": f"Device/{pump_id}"}
    assert rate["parent"] == {"reference": f"Device/{pump_id}-ch1"}
    assert rate["operationalStatus"] == "on" and rate["category"] == "setting"
    idle = get(fenv, f"/fhir/DeviceMetric/{pump_id}-ch2-vol")
    assert idle["operationalStatus"] == "off"  # channel 2 never reported
    found = entries(get(fenv, "/fhir/DeviceMetric", source=f"Device/{pump_id}"))
    assert len(found) == 2 * 3
    found = entries(
        get(fenv, "/fhir/DeviceMetric", parent=f"Device/{pump_id}-ch1", type=f"{MDC}|157872")
    )
    assert [m["id"] for m in found] == [f"{pump_id}-ch1-vtbi"]


def test_observations_from_status_reports(fenv: OrderEnv) -> None:
    pump_id, _serial, patient = fenv.bed()
    fenv.clock.advance(60)
    seq1 = running(fenv, pump_id, volume_infused_ml=1.5)
    fenv.clock.advance(60)
    seq2 = running(fenv, pump_id, volume_infused_ml=2.0)
    bundle = get(fenv, "/fhir/Observation", device=f"Device/{pump_id}-ch1", _count=100)
    obs = entries(bundle, "Observation")
    assert bundle["total"] == len(obs) == 2 * 3  # rate, volume, VTBI left per report
    assert [o["id"] for o in obs[:3]] == [
        f"{pump_id}-ch1-rate-{seq2}",
        f"{pump_id}-ch1-vol-{seq2}",
        f"{pump_id}-ch1-vtbi-{seq2}",
    ]
    vol = next(o for o in obs if o["id"] == f"{pump_id}-ch1-vol-{seq1}")
    assert vol["valueQuantity"] == {"value": 1.5, "unit": "mL", "system": UCUM, "code": "mL"}
    assert vol["code"]["coding"][0]["code"] == "157993"
    assert vol["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert vol["device"] == {"reference": f"DeviceMetric/{pump_id}-ch1-vol"}
    assert vol["effectiveDateTime"].startswith("2026-12-03T")
    assert get(fenv, f"/fhir/Observation/{vol['id']}") == vol
    # by patient and code; by date
    rates = entries(
        get(fenv, "/fhir/Observation", patient=str(patient["id"]), code=f"{MDC}|157784")
    )
    assert [o["id"] for o in rates] == [f"{pump_id}-ch1-rate-{seq2}", f"{pump_id}-ch1-rate-{seq1}"]
    assert all(o["valueQuantity"]["code"] == "mL/h" for o in rates)
    after = vol["effectiveDateTime"]
    later = entries(
        get(fenv, "/fhir/Observation", device=f"DeviceMetric/{pump_id}-ch1-vol", date=f"gt{after}")
    )
    assert [o["id"] for o in later] == [f"{pump_id}-ch1-vol-{seq2}"]
    # paging: total stays, next link walks on
    page = get(fenv, "/fhir/Observation", device=f"Device/{pump_id}", _count=4)
    assert page["total"] == 6 and len(entries(page)) == 4
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert "_count=4" in links["self"] and "_offset=4" in links["next"]
    nxt = parsed(fenv.client.get(links["next"], headers=fenv.h[Role.NURSE]))
    assert len(entries(nxt)) == 2 and "next" not in {link["relation"] for link in nxt["link"]}


def test_observation_subject_is_the_patient_at_that_time(fenv: OrderEnv) -> None:
    pump_id, _serial = fenv.pump()
    fenv.clock.advance(30)
    before = running(fenv, pump_id)  # nobody associated yet
    patient = fenv.patient()
    fenv.clock.advance(30)
    fenv.associate(pump_id, 1, patient["id"])
    fenv.clock.advance(30)
    during = running(fenv, pump_id)
    first = get(fenv, f"/fhir/Observation/{pump_id}-ch1-rate-{before}")
    assert first["subject"] == {"reference": f"Device/{pump_id}"}  # PoCD: the MDS
    second = get(fenv, f"/fhir/Observation/{pump_id}-ch1-rate-{during}")
    assert second["subject"] == {"reference": f"Patient/{patient['id']}"}
    mine = entries(get(fenv, "/fhir/Observation", patient=f"Patient/{patient['id']}"))
    assert {o["id"].rsplit("-", 1)[-1] for o in mine} == {str(during)}


def test_medication_administration_from_infusions(fenv: OrderEnv) -> None:
    pump_id, _serial, patient = fenv.bed()
    fenv.clock.advance(10)
    running(fenv, pump_id, volume_infused_ml=0.0)
    fenv.clock.advance(600)
    running(fenv, pump_id, volume_infused_ml=2.5)
    found = entries(get(fenv, "/fhir/MedicationAdministration", device=f"Device/{pump_id}"))
    (admin,) = found
    assert admin["status"] == "in-progress"
    assert admin["medicationCodeableConcept"]["text"] == "dopamine"
    assert admin["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert admin["device"] == [{"reference": f"Device/{pump_id}-ch1"}]
    assert admin["dosage"]["rateQuantity"]["value"] == 15.0
    assert admin["dosage"]["dose"] == {"value": 2.5, "unit": "mL", "system": UCUM, "code": "mL"}
    assert "5 mcg/kg/min" in admin["dosage"]["text"]
    fenv.clock.advance(60)
    fenv.status(pump_id, state="completed", drug="dopamine", volume_infused_ml=3.0)
    done = get(fenv, f"/fhir/MedicationAdministration/{admin['id']}")
    assert done["status"] == "completed" and "end" in done["effectivePeriod"]
    assert done["dosage"]["dose"]["value"] == 3.0
    by_patient = entries(
        get(fenv, "/fhir/MedicationAdministration", patient=f"Patient/{patient['id']}")
    )
    assert [a["id"] for a in by_patient] == [admin["id"]]


def test_patient_read_and_search(fenv: OrderEnv) -> None:
    made = fenv.patient()
    p = get(fenv, f"/fhir/Patient/{made['id']}", Role.INTERFACE)
    assert p["identifier"][0]["value"] == made["mrn"]
    assert p["identifier"][0]["system"] == MRN_SYSTEM
    assert p["name"][0] == {"family": "Order", "given": ["Pat"]}
    assert p["gender"] == "male" and p["birthDate"] == "1958-03-02"
    found = entries(get(fenv, "/fhir/Patient", identifier=f"{MRN_SYSTEM}|{made['mrn']}"))
    assert [x["id"] for x in found] == [str(made["id"])]
    assert get(fenv, "/fhir/Patient", identifier="NOPE-1")["total"] == 0


def medication_request(pump_id: str, mrn: str, channel: int = 1, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "identifier": [{"value": f"FHIR-PLC-{next(_n)}"}],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "dopamine"},
        "subject": {"identifier": {"system": MRN_SYSTEM, "value": mrn}},
        "requester": {"display": "Dr Order"},
        "extension": [
            {
                "url": EXT_TARGET_DEVICE,
                "valueReference": {"reference": f"Device/{pump_id}-ch{channel}"},
            },
            {"url": EXT_CONCENTRATION, "valueString": "400 mg/250 mL"},
        ],
        "dosageInstruction": [
            {
                "doseAndRate": [
                    {
                        "rateQuantity": {
                            "value": 5,
                            "unit": "ug/kg/min",
                            "system": UCUM,
                            "code": "ug/kg/min",
                        },
                        "doseQuantity": {"value": 250, "unit": "mL", "system": UCUM, "code": "mL"},
                    }
                ]
            }
        ],
    }
    body.update(over)
    return body


def test_medication_request_is_prepopulated_awaiting_bedside_confirmation(
    fenv: OrderEnv,
) -> None:
    pump_id, _serial, patient = fenv.bed()
    body = medication_request(pump_id, patient["mrn"])
    r = fenv.client.post(
        "/fhir/MedicationRequest", headers={**fenv.h[Role.INTERFACE], **FHIR_JSON}, json=body
    )
    made = parsed(r, 201)
    assert r.headers["location"].endswith(f"/fhir/MedicationRequest/{made['id']}")
    assert made["status"] == "active" and made["intent"] == "order"
    ext = {e["url"]: e for e in made["extension"]}
    assert ext[EXT_BEDSIDE]["valueBoolean"] is True
    assert (
        "bedside" in made["note"][0]["text"] and "never started remotely" in made["note"][0]["text"]
    )
    assert ext[EXT_TARGET_DEVICE]["valueReference"] == {"reference": f"Device/{pump_id}-ch1"}
    assert made["identifier"][0]["value"] == body["identifier"][0]["value"]
    assert made["subject"]["reference"] == f"Patient/{patient['id']}"
    dr = made["dosageInstruction"][0]["doseAndRate"][0]
    assert dr["rateQuantity"]["code"] == "ug/kg/min" and dr["rateQuantity"]["value"] == 5
    assert dr["doseQuantity"]["value"] == 250
    with fenv.ctx.db.read() as s:
        row = s.get(InfusionOrder, int(made["id"]))
        assert row is not None and row.source == "fhir" and row.dose == "5 mcg/kg/min"
        assert row.vtbi_ml == 250 and row.concentration == "400 mg/250 mL"
        assert row.created_by == "interface1" and row.ordered_by == "Dr Order"
        command = s.get(Command, row.command_id)
        assert command is not None and command.action == "program"  # pre-populated only
    assert get(fenv, f"/fhir/MedicationRequest/{made['id']}", Role.MONITOR) == made
    mine = entries(get(fenv, "/fhir/MedicationRequest", patient=f"Patient/{patient['id']}"))
    assert [m["id"] for m in mine] == [made["id"]]
    by_device = entries(get(fenv, "/fhir/MedicationRequest", device=f"Device/{pump_id}"))
    assert [m["id"] for m in by_device] == [made["id"]]
    assert entries(
        get(fenv, "/fhir/MedicationRequest", status="active", device=f"Device/{pump_id}")
    )
    assert not entries(
        get(fenv, "/fhir/MedicationRequest", status="completed", device=f"Device/{pump_id}")
    )


def test_medication_request_rate_ratio_and_subject_reference(fenv: OrderEnv) -> None:
    pump_id, _serial, patient = fenv.bed()
    body = medication_request(
        pump_id,
        patient["mrn"],
        subject={"reference": f"Patient/{patient['id']}"},
        dosageInstruction=[
            {
                "doseAndRate": [
                    {
                        "rateRatio": {
                            "numerator": {"value": 30, "system": UCUM, "code": "mL"},
                            "denominator": {"value": 2, "system": UCUM, "code": "h"},
                        }
                    }
                ]
            }
        ],
    )
    made = parsed(
        fenv.client.post("/fhir/MedicationRequest", headers=fenv.h[Role.PHYSICIAN], json=body), 201
    )
    with fenv.ctx.db.read() as s:
        row = s.get(InfusionOrder, int(made["id"]))
        assert row is not None and row.rate_ml_h == 15.0 and row.dose is None
        assert row.patient_mrn == patient["mrn"]


def test_refused_medication_request_names_fhir_paths_and_changes_nothing(
    fenv: OrderEnv,
) -> None:
    pump_id, _serial, patient = fenv.bed()
    other = fenv.patient()
    before = fenv.counts()
    r = fenv.client.post(
        "/fhir/MedicationRequest",
        headers=fenv.h[Role.INTERFACE],
        json=medication_request(pump_id, other["mrn"]),  # the channel infuses `patient`
    )
    issues = outcome(r, 422)
    assert issues[0]["expression"] == ["MedicationRequest.subject"]
    assert "wrong patient" in issues[0]["diagnostics"]
    assert fenv.counts() == before
    # mapping problems: several at once, each with its path
    bad = medication_request(pump_id, patient["mrn"], status="draft", identifier=[])
    bad["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["code"] = "U/h"
    issues = outcome(
        fenv.client.post("/fhir/MedicationRequest", headers=fenv.h[Role.INTERFACE], json=bad), 422
    )
    paths = {i["expression"][0] for i in issues}
    assert {
        "MedicationRequest.status",
        "MedicationRequest.identifier",
        "MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity.code",
    } <= paths
    assert fenv.counts() == before


def test_unit_scoping_c11(fenv: OrderEnv) -> None:
    pump_a, _s, patient_a = fenv.bed()
    pump_b, _sb = fenv.pump(unit="ward-b")
    made = fenv.client.post(
        "/api/users",
        headers=fenv.h[Role.ADMIN],
        json={"username": f"fhir-nurse-{next(_n)}", "role": "nurse", "unit": "ward-b"},
    ).json()
    nurse_b = login(fenv.client, made["username"], made["password"])
    for path in (
        f"/fhir/Device/{pump_a}",
        f"/fhir/Patient/{patient_a['id']}",
        f"/fhir/DeviceMetric/{pump_a}-ch1-rate",
    ):
        hidden = fenv.client.get(path, headers=nurse_b)
        missing = fenv.client.get(
            path.replace(pump_a, "P-ffffffffffff").replace(str(patient_a["id"]), "999999"),
            headers=nurse_b,
        )
        assert outcome(hidden, 404)[0]["code"] == outcome(missing, 404)[0]["code"] == "not-found"
    seen = {
        d["id"]
        for d in entries(
            parsed(fenv.client.get("/fhir/Device", params={"_count": 100}, headers=nurse_b))
        )
    }
    assert pump_b in seen and pump_a not in seen
    assert UNIT != "ward-b"


def test_permissions_and_errors_are_operation_outcomes(fenv: OrderEnv) -> None:
    c = fenv.client
    assert outcome(c.get("/fhir/Device"), 401)[0]["code"] == "login"
    assert c.get("/fhir/Device").headers["www-authenticate"] == "Bearer"
    assert (
        outcome(c.get("/fhir/Observation", headers=fenv.h[Role.BIOMED]), 403)[0]["code"]
        == "forbidden"
    )
    denied = c.post("/fhir/MedicationRequest", headers=fenv.h[Role.NURSE], json={})
    assert outcome(denied, 403)[0]["code"] == "forbidden"
    assert outcome(c.get("/fhir/Nothing", headers=fenv.h[Role.NURSE]), 404)
    assert outcome(c.delete("/fhir/Device/P-000000000001", headers=fenv.h[Role.ADMIN]), 405)
    issue = outcome(
        c.get("/fhir/Device", params={"paitent": "1"}, headers=fenv.h[Role.NURSE]), 400
    )[0]
    assert "paitent" in issue["diagnostics"]
    outcome(
        c.get("/fhir/Observation", params={"date": "yesterday"}, headers=fenv.h[Role.NURSE]), 400
    )
    outcome(c.get("/fhir/Patient", params={"_format": "xml"}, headers=fenv.h[Role.NURSE]), 415)
    big = c.post(
        "/fhir/MedicationRequest",
        headers={**fenv.h[Role.INTERFACE], **FHIR_JSON},
        content=b'{"a": "' + b"x" * (300 * 1024) + b'"}',
    )
    assert outcome(big, 413)[0]["code"] == "too-long"
    # _count is capped
    capped = get(fenv, "/fhir/DeviceMetric", _count=100000)
    assert len(entries(capped)) <= MAX_COUNT
    # the rest of the API keeps its own error shape
    assert "error" in c.get("/api/pumps/P-nope", headers=fenv.h[Role.NURSE]).json()


def test_nothing_half_created_counts_orders(fenv: OrderEnv) -> None:
    with fenv.ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(InfusionOrder))
    r = fenv.client.post(
        "/fhir/MedicationRequest",
        headers=fenv.h[Role.INTERFACE],
        json={"resourceType": "MedicationRequest", "status": "active"},
    )
    outcome(r, 400)
    with fenv.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(InfusionOrder)) == before


def test_order_confirmed_at_the_bedside_runs_and_is_charted(fenv: OrderEnv) -> None:
    """The whole loop: an order posted as FHIR is pre-populated, confirmed at the bedside,
    runs, and comes back as a MedicationAdministration whose request is that order."""
    pump_id, _serial, patient = fenv.bed()
    made = parsed(
        fenv.client.post(
            "/fhir/MedicationRequest",
            headers=fenv.h[Role.INTERFACE],
            json=medication_request(pump_id, patient["mrn"]),
        ),
        201,
    )
    with fenv.ctx.db.read() as s:
        row = s.get(InfusionOrder, int(made["id"]))
        assert row is not None
        command_id = row.command_id
    fenv.send(
        pump_id, "command_result", {"command_id": command_id, "outcome": "awaiting_confirmation"}
    )
    waiting = get(fenv, f"/fhir/MedicationRequest/{made['id']}")
    ext = {e["url"]: e for e in waiting["extension"]}
    assert ext[EXT_BEDSIDE]["valueBoolean"] is True and waiting["status"] == "active"
    fenv.clock.advance(20)
    fenv.send(pump_id, "command_result", {"command_id": command_id, "outcome": "accepted"})
    fenv.clock.advance(1)
    running(fenv, pump_id, volume_infused_ml=0.5)
    now_running = get(fenv, f"/fhir/MedicationRequest/{made['id']}")
    ext = {e["url"]: e for e in now_running["extension"]}
    assert ext[EXT_BEDSIDE]["valueBoolean"] is False and "note" not in now_running
    assert now_running["status"] == "active"
    (admin,) = entries(get(fenv, "/fhir/MedicationAdministration", device=f"Device/{pump_id}-ch1"))
    assert admin["request"] == {"reference": f"MedicationRequest/{made['id']}"}
    fenv.clock.advance(600)
    fenv.status(pump_id, state="completed", drug="dopamine", volume_infused_ml=150.0)
    done = get(fenv, f"/fhir/MedicationRequest/{made['id']}")
    assert done["status"] == "completed"
    assert get(fenv, f"/fhir/MedicationAdministration/{admin['id']}")["status"] == "completed"


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("associate"), st.integers(min_value=0, max_value=2)),
        st.tuples(st.just("end"), st.just(0)),
        st.tuples(st.just("status"), st.just(0)),
        st.tuples(st.just("advance"), st.integers(min_value=1, max_value=120)),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_property_observation_subject_is_who_the_channel_infused_then(
    fenv: OrderEnv, steps: list[tuple[str, int]]
) -> None:
    """Whatever the order of associations, ends and status reports, every Observation of
    the channel names as subject the patient associated at that report (the pump itself
    when none), and a patient search returns exactly that patient's reports."""
    patients = getattr(fenv, "_fhir_patients", None)
    if patients is None:
        patients = [fenv.patient()["id"] for _ in range(3)]
        fenv._fhir_patients = patients  # type: ignore[attr-defined]
    pump_id, _serial = fenv.pump()
    current: int | None = None
    expected: dict[int, int | None] = {}  # seq -> patient id
    for action, arg in steps:
        if action == "associate" and current is None:
            fenv.associate(pump_id, 1, patients[arg])
            current = patients[arg]
        elif action == "end" and current is not None:
            r = fenv.client.delete(
                f"/api/pumps/{pump_id}/channels/1/association", headers=fenv.h[Role.NURSE]
            )
            assert r.status_code == 200
            current = None
        elif action == "status":
            expected[running(fenv, pump_id)] = current
        fenv.clock.advance(arg if action == "advance" else 1)
    found = entries(
        get(fenv, "/fhir/Observation", device=f"DeviceMetric/{pump_id}-ch1-rate", _count=100)
    )
    got = {int(o["id"].rsplit("-", 1)[-1]): o["subject"]["reference"] for o in found}
    want = {
        seq: f"Patient/{pid}" if pid is not None else f"Device/{pump_id}"
        for seq, pid in expected.items()
    }
    assert got == want
    for pid in patients:
        mine = entries(
            get(
                fenv,
                "/fhir/Observation",
                patient=f"Patient/{pid}",
                device=f"Device/{pump_id}-ch1",
                code="157784",
            )
        )
        assert {int(o["id"].rsplit("-", 1)[-1]) for o in mine} == {
            s for s, p in expected.items() if p == pid
        }


def test_only_json_is_served_and_a_failure_is_an_operation_outcome(
    fenv: OrderEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made = fenv.patient()
    path, nurse = f"/fhir/Patient/{made['id']}", fenv.h[Role.NURSE]
    xml_only = fenv.client.get(path, headers={**nurse, "Accept": "application/fhir+xml"})
    assert outcome(xml_only, 406)[0]["code"] == "not-supported"
    either = {**nurse, "Accept": "application/fhir+xml;q=0.9, application/fhir+json"}
    assert parsed(fenv.client.get(path, headers=either))["id"] == str(made["id"])

    def broken(_patient: Any) -> dict[str, Any]:
        raise RuntimeError("simulated fault while building the resource")

    monkeypatch.setattr("openinfusion.interop.fhir.resources.fhir_patient", broken)
    with caplog.at_level("ERROR", logger="openinfusion.interop.fhir.api"):
        failed = fenv.client.get(path, headers=nurse)
    assert outcome(failed, 500)[0]["code"] == "exception"
    assert "simulated fault" not in failed.text  # no internals in the answer
    assert any("FHIR request GET" in r.getMessage() for r in caplog.records)
