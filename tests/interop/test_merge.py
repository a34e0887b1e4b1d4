"""Patient merge (ADT^A40, RELIABILITY B-23): an open association is never remapped; it is
flagged for bedside re-verification, and no order is pre-populated on it until then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from openinfusion.interop.merge import merge_patients
from openinfusion.interop.order_tables import PatientMerge
from openinfusion.interop.records import PatientRef
from openinfusion.server.app import create_app
from openinfusion.server.models import Association, Patient
from openinfusion.server.permissions import Role
from tests.interop.test_orders import OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)


@pytest.fixture(scope="module")
def oenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("merge")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def test_b23_merge_during_an_infusion_flags_not_remaps(oenv: OrderEnv) -> None:
    pump_id, serial, prior = oenv.bed()
    oenv.status(pump_id, state="running", drug="dopamine", rate_ml_h=15.0)
    waiting = oenv.submit(oenv.order(serial, prior["mrn"]))  # pre-populated before the merge
    assert waiting.accepted
    surviving = oenv.patient()
    out = merge_patients(
        oenv.ctx, prior["mrn"], PatientRef(surviving["mrn"]), actor="interface1", control_id="A40-1"
    )
    assert out.merged and out.issues == () and len(out.flagged) == 1
    with oenv.ctx.db.read() as s:
        assoc = s.get(Association, out.flagged[0])
        assert assoc is not None and assoc.patient_id == prior["id"] and assoc.ended_at is None
    flags = oenv.client.get("/api/orders/reverifications", headers=oenv.h[Role.NURSE]).json()
    mine = [f for f in flags if f["association_id"] == out.flagged[0]]
    assert mine and mine[0]["infusing"] is True and mine[0]["open"] is True
    assert mine[0]["prior_mrn"] == prior["mrn"] and mine[0]["surviving_mrn"] == surviving["mrn"]
    audit = oenv.client.get(
        "/api/audit", params={"action": "association.reverify"}, headers=oenv.h[Role.ADMIN]
    ).json()
    assert audit[-1]["details"]["association_id"] == out.flagged[0]

    # the order already on the channel is shown as awaiting re-verification
    view = oenv.client.get(f"/api/orders/{waiting.order_id}", headers=oenv.h[Role.NURSE]).json()
    assert view["awaiting_reverification"] is True

    # no order is pre-populated on the flagged channel, for either MRN
    before = oenv.counts()
    for mrn in (surviving["mrn"], prior["mrn"]):
        refused = oenv.submit(oenv.order(serial, mrn))
        assert not refused.accepted
        assert any("merge" in i.rule for i in refused.issues), refused.issues
    assert oenv.counts() == before

    # the same merge again changes nothing
    again = merge_patients(oenv.ctx, prior["mrn"], PatientRef(surviving["mrn"]), actor="interface1")
    assert again.merged and again.duplicate and again.flagged == ()

    # re-verified at the bedside: association ended and made again with the surviving patient
    path = f"/api/pumps/{pump_id}/channels/1/association"
    assert oenv.client.delete(path, headers=oenv.h[Role.NURSE]).status_code == 200
    oenv.associate(pump_id, 1, surviving["id"])
    flags = oenv.client.get("/api/orders/reverifications", headers=oenv.h[Role.NURSE]).json()
    assert not [f for f in flags if f["association_id"] == out.flagged[0]]
    view = oenv.client.get(f"/api/orders/{waiting.order_id}", headers=oenv.h[Role.NURSE]).json()
    assert view["awaiting_reverification"] is False
    assert oenv.submit(oenv.order(serial, surviving["mrn"])).accepted


def test_merge_into_an_unknown_surviving_mrn_records_it(oenv: OrderEnv) -> None:
    prior = oenv.patient(weight_kg=71.0)
    out = merge_patients(
        oenv.ctx,
        prior["mrn"],
        PatientRef("MRN-NEW-1", "Merged", "Pat", date(1958, 3, 2), "male"),
        actor="interface1",
    )
    assert out.merged and out.flagged == ()
    with oenv.ctx.db.read() as s:
        row = s.scalars(select(Patient).where(Patient.mrn == "MRN-NEW-1")).one()
        assert row.family_name == "Merged" and row.weight_kg == 71.0
        merge = s.scalars(select(PatientMerge).where(PatientMerge.prior_mrn == prior["mrn"])).one()
        assert merge.surviving_patient_id == row.id and merge.prior_patient_id == prior["id"]


def test_merge_refusals(oenv: OrderEnv) -> None:
    a, b, c = oenv.patient(), oenv.patient(), oenv.patient()
    assert merge_patients(oenv.ctx, a["mrn"], PatientRef(b["mrn"]), actor="i").merged
    out = merge_patients(oenv.ctx, a["mrn"], PatientRef(c["mrn"]), actor="i")
    assert not out.merged and "already merged into" in out.issues[0].rule
    out = merge_patients(oenv.ctx, c["mrn"], PatientRef(a["mrn"]), actor="i")
    assert not out.merged and out.issues[0].field == "mrn"
    out = merge_patients(oenv.ctx, c["mrn"], PatientRef(c["mrn"]), actor="i")
    assert not out.merged and "itself" in out.issues[0].rule
    out = merge_patients(oenv.ctx, "bad mrn!", PatientRef(""), actor="i")
    assert {i.field for i in out.issues} == {"prior_mrn", "mrn"}
    # a prior MRN this server never knew: nothing to do, said so
    out = merge_patients(oenv.ctx, "MRN-NEVER", PatientRef(c["mrn"]), actor="i")
    assert out.merged and out.merge_id is None and "not known" in out.note
