"""Order intake (IHE PCD-03 PIV): every refusal of RELIABILITY B-04 names field, value and rule
and changes nothing on the pump; an accepted order is only pre-populated (never started)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.interop.orders import OrderOutcome, current_order_for, submit_order
from openinfusion.interop.records import OrderRequest
from openinfusion.library.loading import sample_library
from openinfusion.library.signing import sign_library
from openinfusion.security import generate_private_key
from openinfusion.server.app import create_app
from openinfusion.server.context import ServerContext
from openinfusion.server.models import AuditRecord, Command, PublishedLibrary
from openinfusion.server.permissions import Role
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)
from tests.server.test_app_permissions import Env

UNIT = "adult-icu"  # a care unit named like the library's care area
_n = itertools.count(1)


class OrderEnv(Env):
    """A server with the sample library published, pumps that run it, and patients."""

    def __init__(self, client: TestClient, app: Any, clock: FakeClock) -> None:
        super().__init__(client, app, clock)
        self.ctx: ServerContext = app.state.ctx
        self.keys: dict[str, Any] = {}
        self.seqs: dict[str, int] = {}
        lib = sample_library()
        package = sign_library(lib, generate_private_key(), "Pharmacist P", clock())
        with self.ctx.db.write() as session:
            session.add(
                PublishedLibrary(
                    version=lib.version,
                    name=lib.name,
                    sha256=package["signed"]["sha256"],
                    key_id=package["signed"]["key_id"],
                    signer="Pharmacist P",
                    signed_at=package["signed"]["signed_at"],
                    package=package,
                    published_by="pharmacist1",
                    published_at=clock(),
                )
            )
        self.library_version = lib.version

    def pump(self, unit: str | None = UNIT, library: str | None = None) -> tuple[str, str]:
        """A pump enrolled into ``unit`` reporting ``library`` active; (pump id, serial)."""
        serial = f"SN-ORD-{next(_n):04d}"
        pump_id, key = self.enrol(unit, serial)
        self.keys[pump_id], self.seqs[pump_id] = key, 0
        self.status(pump_id, library=library or self.library_version)
        return pump_id, serial

    def send(self, pump_id: str, kind: str, body: dict[str, Any]) -> int:
        self.seqs[pump_id] += 1
        self.feed(pump_id, self.keys[pump_id], self.seqs[pump_id], kind, body)
        return self.seqs[pump_id]

    def status(self, pump_id: str, library: str | None = None, **channel: Any) -> int:
        ch = {"channel": 1, "state": "idle", **channel}
        body: dict[str, Any] = {"channels": [ch]}
        if library:
            body["library"] = {"name": "x", "version": library}
        return self.send(pump_id, "status", body)

    def patient(self, weight_kg: float | None = 80.0, unit: str = UNIT) -> dict[str, Any]:
        body = {
            "mrn": f"MRN-O{next(_n):05d}",
            "family_name": "Order",
            "given_name": "Pat",
            "birth_date": "1958-03-02",
            "sex": "male",
            "unit": unit,
        }
        if weight_kg is not None:
            body["weight_kg"] = weight_kg
        r = self.client.post("/api/patients", headers=self.h[Role.PHYSICIAN], json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def associate(self, pump_id: str, channel: int, patient_id: int) -> None:
        r = self.client.post(
            f"/api/pumps/{pump_id}/channels/{channel}/association",
            headers=self.h[Role.NURSE],
            json={"patient_id": patient_id},
        )
        assert r.status_code == 201, r.text

    def bed(self, weight_kg: float | None = 80.0) -> tuple[str, str, dict[str, Any]]:
        """A pump whose channel 1 is associated with a new patient."""
        pump_id, serial = self.pump()
        patient = self.patient(weight_kg)
        self.associate(pump_id, 1, patient["id"])
        return pump_id, serial, patient

    def order(self, serial: str, mrn: str, **fields: Any) -> OrderRequest:
        n = next(_n)
        base: dict[str, Any] = {
            "source": "hl7",
            "placer_order_id": f"PLC-{n}",
            "patient_mrn": mrn,
            "pump_serial": serial,
            "channel": 1,
            "drug_code": None,
            "drug_name": "dopamine",
            "concentration": "400 mg/250 mL",
            "dose": "5 mcg/kg/min",
            "rate_ml_h": None,
            "vtbi_ml": 250.0,
            "message_control_id": f"MSG-{n}",
            "sending_application": "EHR^HOSP",
        }
        base.update(fields)
        return OrderRequest(**base)

    def submit(self, order: OrderRequest) -> OrderOutcome:
        return submit_order(self.ctx, order, actor="interface1")

    def counts(self) -> tuple[int, int, int]:
        """(commands, accepted-order audits, command events) — what must not move on refusal."""
        with self.ctx.db.read() as s:
            return (
                s.scalar(select(func.count()).select_from(Command)) or 0,
                s.scalar(
                    select(func.count())
                    .select_from(AuditRecord)
                    .where(AuditRecord.action == "order.accepted")
                )
                or 0,
                s.scalar(
                    select(func.count())
                    .select_from(InfusionOrder)
                    .where(InfusionOrder.command_id.is_not(None))
                )
                or 0,
            )


@pytest.fixture(scope="module")
def oenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("orders")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def command_of(env: OrderEnv, command_id: str) -> Command:
    with env.ctx.db.read() as s:
        command = s.get(Command, command_id)
        assert command is not None
        s.expunge(command)
        return command


def test_accepted_order_is_only_prepopulated(oenv: OrderEnv) -> None:
    pump_id, serial, patient = oenv.bed()
    out = oenv.submit(oenv.order(serial, patient["mrn"]))
    assert out.accepted and out.issues == () and out.status == "unconfirmed"
    assert out.order_id is not None and out.command_id is not None and not out.soft_limit
    cmd = command_of(oenv, out.command_id)
    # a program command: the pump only pre-populates it (bedside confirmation, C-17)
    assert cmd.action == "program" and cmd.pump_id == pump_id and cmd.channel == 1
    assert cmd.params == {
        "drug": "dopamine",
        "concentration": "400 mg/250 mL",
        "dose": "5 mcg/kg/min",
        "vtbi_ml": 250.0,
    }
    assert cmd.issued_by == "interface1" and cmd.status == "unconfirmed"
    with oenv.ctx.db.read() as s:
        row = s.get(InfusionOrder, out.order_id)
        assert row is not None and row.care_area == "Adult ICU"
        assert row.library_version == oenv.library_version
        assert current_order_for(s, pump_id, 1, oenv.clock()) == row.placer_order_id
        assert current_order_for(s, pump_id, 2, oenv.clock()) is None
    audit = oenv.client.get(
        "/api/audit", params={"action": "order.accepted"}, headers=oenv.h[Role.ADMIN]
    ).json()
    assert audit[-1]["details"]["command_id"] == out.command_id


def _refused(env: OrderEnv, order: OrderRequest) -> OrderOutcome:
    before = env.counts()
    out = env.submit(order)
    assert not out.accepted and out.command_id is None and out.status == "rejected"
    assert out.issues, "a refusal names at least one issue"
    assert env.counts() == before, "nothing is pre-populated on a refusal"
    for issue in out.issues:
        assert issue.field and issue.rule and 100 <= issue.hl7_code <= 207
    return out


def test_b04_wrong_patient_is_refused(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed()
    other = oenv.patient()
    out = _refused(oenv, oenv.order(serial, other["mrn"]))
    (issue,) = out.issues
    assert issue.field == "patient_mrn" and issue.value == other["mrn"]
    assert "wrong patient" in issue.rule and patient["mrn"] in issue.rule


def test_b04_unassociated_channel_unknown_pump_and_patient(oenv: OrderEnv) -> None:
    _pump, serial = oenv.pump()
    patient = oenv.patient()
    out = _refused(oenv, oenv.order(serial, patient["mrn"]))
    assert out.issues[0].field == "channel" and "no patient" in out.issues[0].rule
    out = _refused(oenv, oenv.order("SN-NOPE", "MRN-NOPE"))
    fields = {(i.field, i.hl7_code) for i in out.issues}
    assert fields == {("pump_serial", 204), ("patient_mrn", 204)}
    out = _refused(oenv, oenv.order(serial, patient["mrn"], channel=3))
    assert any(i.field == "channel" and "channels 1 to 2" in i.rule for i in out.issues)


@pytest.mark.parametrize(
    ("fields", "field", "words", "code"),
    [
        ({"drug_name": "unobtainium"}, "drug", "not in drug library", 103),
        ({"concentration": "400 units/250 mL"}, "concentration", "dosed in mass", 103),
        ({"concentration": "123 mg/250 mL"}, "concentration", "not a library concentration", 207),
        ({"dose": "60 mcg/kg/min"}, "dose", "above the hard limit 50", 207),
        ({"rate_ml_h": 300.0}, "rate_ml_h", "does not match the dose", 207),
        ({"rate_ml_h": -1.0}, "rate_ml_h", "must be above 0", 207),
        ({"vtbi_ml": float("nan")}, "vtbi_ml", "must be above 0", 207),
        ({"dose": "5 mcg/kg/fortnight"}, "dose", "", 102),
        ({"patient_weight_kg": 900.0}, "patient_weight_kg", "0.2 to 500 kg", 207),
        ({"placer_order_id": ""}, "placer_order_id", "required", 101),
        ({"dose": None, "rate_ml_h": None}, "dose", "give a dose or a rate", 101),
        ({"source": "fax"}, "source", "must be hl7 or fhir", 102),
    ],
)
def test_b04_semantic_errors_are_refused(
    oenv: OrderEnv, fields: dict[str, Any], field: str, words: str, code: int
) -> None:
    _pump, serial, patient = oenv.bed()
    out = _refused(oenv, oenv.order(serial, patient["mrn"], **fields))
    assert [i.field for i in out.issues] == [field], out.issues
    assert words in out.issues[0].rule and out.issues[0].hl7_code == code


def test_rate_and_dose_that_agree_are_accepted(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed(weight_kg=80.0)
    # 5 mcg/kg/min x 80 kg = 24 mg/h at 1.6 mg/mL = 15 mL/h
    out = oenv.submit(oenv.order(serial, patient["mrn"], rate_ml_h=15.0))
    assert out.accepted, out.issues


def test_soft_limit_is_prepopulated_with_the_flag(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed()
    out = oenv.submit(oenv.order(serial, patient["mrn"], dose="25 mcg/kg/min"))
    assert out.accepted and out.soft_limit
    view = oenv.client.get(f"/api/orders/{out.order_id}", headers=oenv.h[Role.NURSE])
    if view.status_code == 200:  # the REST face, once mounted
        assert view.json()["soft_limit"] is True
        assert "soft limit" in json.dumps(view.json()["findings"])


def test_duplicate_control_id_answers_again_without_acting(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed()
    order = oenv.order(serial, patient["mrn"])
    first = oenv.submit(order)
    before = oenv.counts()
    again = oenv.submit(order)
    assert again.duplicate and replace(again, duplicate=False) == first
    assert oenv.counts() == before
    # a refused message sent again gets the same refusal
    bad = oenv.order(serial, patient["mrn"], drug_name="unobtainium")
    one, two = oenv.submit(bad), oenv.submit(bad)
    assert two.duplicate and two.issues == one.issues and two.order_id == one.order_id


def test_replayed_placer_order_is_refused(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed()
    first = oenv.submit(oenv.order(serial, patient["mrn"]))
    assert first.accepted
    with oenv.ctx.db.read() as s:
        row = s.get(InfusionOrder, first.order_id)
        assert row is not None
        placer = row.placer_order_id
    out = _refused(
        oenv, oenv.order(serial, patient["mrn"], placer_order_id=placer, message_control_id="X9")
    )
    assert out.issues[0].field == "placer_order_id" and out.issues[0].hl7_code == 205


def test_control_id_reused_for_another_order_is_refused(oenv: OrderEnv) -> None:
    _pump, serial, patient = oenv.bed()
    first = oenv.order(serial, patient["mrn"])
    assert oenv.submit(first).accepted
    out = _refused(oenv, replace(first, placer_order_id="PLC-OTHER"))
    assert out.issues[0].field == "message_control_id"


def test_pump_without_published_library_or_care_area(oenv: OrderEnv) -> None:
    pump_id, serial = oenv.pump(library="2030.1.0")
    patient = oenv.patient()
    oenv.associate(pump_id, 1, patient["id"])
    out = _refused(oenv, oenv.order(serial, patient["mrn"]))
    assert "not published" in out.issues[0].rule
    pump_id, serial = oenv.pump(unit="ward-zz")
    patient = oenv.patient(unit="ward-zz")
    oenv.associate(pump_id, 1, patient["id"])
    out = _refused(oenv, oenv.order(serial, patient["mrn"]))
    assert "names no care area" in out.issues[0].rule
