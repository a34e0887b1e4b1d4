"""Patients and their association with pump channels: create, read, change, associate,
end, re-associate; at most one open association per pump channel (in code, in the
database, and under any sequence of operations); care-unit scoping (C-11); audit entries,
live events and the pump view; the migration on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from openinfusion.server.api import patients as patients_api
from openinfusion.server.app import create_app
from openinfusion.server.db import Database
from openinfusion.server.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from openinfusion.server.models import Association, Base, Patient, Pump
from openinfusion.server.permissions import Role
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    login,
    make_settings,
    status_body,
    wait_for,
)
from tests.server.test_app_permissions import Env
from tests.server.test_app_postgres import pg_url  # noqa: F401 (fixture)

_mrns = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    clock = FakeClock()
    app = create_app(make_settings(tmp_path_factory.mktemp("patients")), clock=clock)
    with TestClient(app) as client:
        yield Env(client, app, clock)


def new_patient(env: Env, role: Role = Role.NURSE, **fields: Any) -> dict[str, Any]:
    body = {
        "mrn": f"MRN-{next(_mrns):06d}",
        "family_name": "Doe",
        "given_name": "Alex",
        "birth_date": "1961-05-17",
        "sex": "female",
        "weight_kg": 64.0,
        **fields,
    }
    r = env.client.post("/api/patients", headers=env.h[role], json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def assoc_path(pump_id: str, channel: int) -> str:
    return f"/api/pumps/{pump_id}/channels/{channel}/association"


def audit(env: Env, action: str) -> list[dict[str, Any]]:
    r = env.client.get(
        "/api/audit", params={"action": action, "limit": 1000}, headers=env.h[Role.ADMIN]
    )
    assert r.status_code == 200
    return list(r.json())


def test_create_read_update(env: Env) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    made = new_patient(env, height_cm=170.0, unit="icu")
    assert made["sex"] == "female" and made["birth_date"] == "1961-05-17"
    assert made["unit"] == "icu" and made["weight_kg"] == 64.0
    assert c.get(f"/api/patients/{made['id']}", headers=env.h[Role.MONITOR]).json() == made
    found = c.get("/api/patients", params={"mrn": made["mrn"]}, headers=env.h[Role.PHYSICIAN])
    assert found.json() == [made]
    assert c.get("/api/patients", params={"mrn": "NOPE-1"}, headers=nurse).json() == []

    env.clock.advance(60)
    r = c.patch(f"/api/patients/{made['id']}", headers=nurse, json={"height_cm": 172.5})
    assert r.status_code == 200 and r.json()["height_cm"] == 172.5
    assert r.json()["updated_at"] > made["updated_at"]
    created = [e for e in audit(env, "patient.create") if e["object"] == f"patient:{made['id']}"]
    assert created and created[-1]["details"]["mrn"] == made["mrn"]
    updated = [e for e in audit(env, "patient.update") if e["object"] == f"patient:{made['id']}"]
    assert updated[-1]["details"]["changes"] == {"height_cm": [170.0, 172.5]}
    assert c.get("/api/audit/verify", headers=env.h[Role.ADMIN]).json()["ok"] is True


def test_duplicate_mrn_is_409(env: Env) -> None:
    first = new_patient(env)
    r = env.client.post(
        "/api/patients",
        headers=env.h[Role.PHYSICIAN],
        json={
            "mrn": first["mrn"],
            "family_name": "Other",
            "given_name": "Person",
            "birth_date": "1990-01-01",
            "sex": "male",
        },
    )
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "mrn" and r.json()["error"]["value"] == first["mrn"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mrn", ""),
        ("mrn", "has space"),
        ("family_name", ""),
        ("given_name", "   "),
        ("given_name", "a\nb"),
        ("birth_date", "17/05/1961"),
        ("birth_date", "2027-01-01"),  # after the server's today (2026-12-03)
        ("sex", "x"),
        ("weight_kg", 0),
        ("weight_kg", 900),
        ("height_cm", 5),
        ("unit", "no/slash"),
        ("nickname", "extra"),
    ],
)
def test_bad_input_names_the_field(env: Env, field: str, value: Any) -> None:
    body = {
        "mrn": "MRN-BAD",
        "family_name": "Doe",
        "given_name": "Alex",
        "birth_date": "1961-05-17",
        "sex": "male",
        field: value,
    }
    r = env.client.post("/api/patients", headers=env.h[Role.NURSE], json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["rule"]
    assert error["value"] == value


def test_patch_refusals(env: Env) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    p = new_patient(env)
    assert c.patch(f"/api/patients/{p['id']}", headers=nurse, json={}).status_code == 422
    r = c.patch(f"/api/patients/{p['id']}", headers=nurse, json={"weight_kg": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "weight_kg"
    r = c.patch(f"/api/patients/{p['id']}", headers=nurse, json={"weight_kg": -3})
    assert r.status_code == 422 and r.json()["error"]["field"] == "weight_kg"
    r = c.patch("/api/patients/999999", headers=nurse, json={"weight_kg": 60})
    assert r.status_code == 404 and r.json()["error"]["field"] == "patient_id"


def test_associate_end_and_reassociate(env: Env) -> None:
    c, nurse, doc = env.client, env.h[Role.NURSE], env.h[Role.PHYSICIAN]
    pump_id, _key = env.enrol(None, "SN-ASSOC-1")
    a, b = new_patient(env), new_patient(env)
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": a["id"]})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["open"] and first["associated_by"] == "nurse1" and first["channel"] == 1
    for patient in (a, b):  # busy: the open association is never replaced
        r = c.post(assoc_path(pump_id, 1), headers=doc, json={"patient_id": patient["id"]})
        assert r.status_code == 409 and r.json()["error"]["field"] == "channel"
    # the other channel is free; one patient may be on several channels
    assert (
        c.post(assoc_path(pump_id, 2), headers=doc, json={"patient_id": a["id"]}).status_code == 201
    )

    r = c.delete(assoc_path(pump_id, 1), headers=doc)
    assert r.status_code == 200 and r.json()["ended_by"] == "physician1" and not r.json()["open"]
    assert c.delete(assoc_path(pump_id, 1), headers=doc).status_code == 404
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": b["id"]})
    assert r.status_code == 201

    hist_a = c.get(f"/api/patients/{a['id']}/associations", headers=env.h[Role.MONITOR]).json()
    assert [(h["channel"], h["open"]) for h in hist_a] == [(1, False), (2, True)]
    hist_b = c.get(f"/api/patients/{b['id']}/associations", headers=nurse).json()
    assert [(h["pump_id"], h["channel"], h["open"]) for h in hist_b] == [(pump_id, 1, True)]

    starts = [
        e for e in audit(env, "association.start") if e["object"].startswith(f"pump:{pump_id}/")
    ]
    ends = [e for e in audit(env, "association.end") if e["object"].startswith(f"pump:{pump_id}/")]
    assert [e["details"]["patient_id"] for e in starts] == [a["id"], a["id"], b["id"]]
    assert [e["details"]["association_id"] for e in ends] == [first["id"]]
    assert ends[0]["actor"] == "physician1" and ends[0]["details"]["mrn"] == a["mrn"]


def test_association_refusals(env: Env) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    pump_id, _key = env.enrol(None, "SN-ASSOC-2")  # two channels
    p = new_patient(env)
    r = c.post(assoc_path(pump_id, 3), headers=nurse, json={"patient_id": p["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "channel"
    assert r.json()["error"]["value"] == 3
    r = c.post(assoc_path(pump_id, 0), headers=nurse, json={"patient_id": p["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "channel"
    assert c.delete(assoc_path(pump_id, 3), headers=nurse).status_code == 422
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": 999999})
    assert r.status_code == 404 and r.json()["error"]["field"] == "patient_id"
    r = c.post(assoc_path("P-ffffffffffff", 1), headers=nurse, json={"patient_id": p["id"]})
    assert r.status_code == 404 and r.json()["error"]["field"] == "pump_id"
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient": p["id"]})
    assert r.status_code == 422
    assert c.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.BIOMED]).status_code == 204
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": p["id"]})
    assert r.status_code == 409 and r.json()["error"]["field"] == "pump_id"
    assert c.get(f"/api/patients/{p['id']}/associations", headers=nurse).json() == []


def test_weight_change_during_an_association_is_audited(env: Env) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    pump_id, _key = env.enrol(None, "SN-WEIGHT")
    p = new_patient(env, weight_kg=80.0)
    c.post(assoc_path(pump_id, 2), headers=nurse, json={"patient_id": p["id"]})
    r = c.patch(f"/api/patients/{p['id']}", headers=env.h[Role.PHYSICIAN], json={"weight_kg": 76.4})
    assert r.status_code == 200 and r.json()["weight_kg"] == 76.4
    entry = [e for e in audit(env, "patient.update") if e["object"] == f"patient:{p['id']}"][-1]
    assert entry["actor"] == "physician1"
    assert entry["details"]["changes"] == {"weight_kg": [80.0, 76.4]}
    assert entry["details"]["open_associations"] == [{"pump_id": pump_id, "channel": 2}]


def test_pump_view_shows_the_patient(env: Env) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    pump_id, key = env.enrol(None, "SN-VIEW")
    env.feed(pump_id, key, 1, "status", status_body())
    p = new_patient(env, family_name="Okafor", given_name="Ngozi")
    assert c.get(f"/api/pumps/{pump_id}", headers=nurse).json()["channels"][0]["patient"] is None
    made = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": p["id"]}).json()
    want = {
        "id": p["id"],
        "mrn": p["mrn"],
        "family_name": "Okafor",
        "given_name": "Ngozi",
        "association_id": made["id"],
        "associated_at": made["associated_at"],
    }
    one = c.get(f"/api/pumps/{pump_id}", headers=env.h[Role.MONITOR]).json()
    assert one["channels"][0]["patient"] == want
    listed = {v["id"]: v for v in c.get("/api/pumps", headers=nurse).json()}
    assert listed[pump_id]["channels"][0]["patient"] == want
    c.delete(assoc_path(pump_id, 1), headers=nurse)
    assert c.get(f"/api/pumps/{pump_id}", headers=nurse).json()["channels"][0]["patient"] is None


def test_changes_are_published_as_live_events(env: Env) -> None:
    c, nurse, bus = env.client, env.h[Role.NURSE], env.app.state.ctx.bus
    pump_id, _key = env.enrol("ward-e", "SN-EVENTS")
    sub = bus.subscribe()
    try:
        p = new_patient(env, unit="ward-e")
        c.patch(f"/api/patients/{p['id']}", headers=nurse, json={"weight_kg": 50.5})
        c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": p["id"]})
        c.delete(assoc_path(pump_id, 1), headers=nurse)
        seen: list[dict[str, Any]] = []

        def drained() -> bool:
            while not sub.queue.empty():
                seen.append(sub.queue.get_nowait())
            return any(e["type"] == "association_ended" for e in seen)

        wait_for(drained)
    finally:
        bus.unsubscribe(sub)
    mine = [e for e in seen if e["type"] != "audit"]
    assert [e["type"] for e in mine] == [
        "patient_created",
        "patient_updated",
        "association_started",
        "association_ended",
    ]
    assert all(e["unit"] == "ward-e" for e in mine)
    assert mine[1]["fields"] == ["weight_kg"] and mine[2]["pump_id"] == pump_id


def test_c11_unit_scoping(env: Env) -> None:
    c, admin = env.client, env.h[Role.ADMIN]
    made = c.post(
        "/api/users",
        headers=admin,
        json={"username": "nurse-pa", "role": "nurse", "unit": "ward-pa"},
    ).json()
    nurse_a = login(c, "nurse-pa", made["password"])
    pump_a, _ = env.enrol("ward-pa", "SN-PA")
    pump_b, _ = env.enrol("ward-pb", "SN-PB")
    hidden = new_patient(env, unit="ward-pb")  # by an unscoped nurse
    own = c.post(
        "/api/patients",
        headers=nurse_a,
        json={
            "mrn": "MRN-PA-1",
            "family_name": "Local",
            "given_name": "Pat",
            "birth_date": "2001-03-04",
            "sex": "other",
        },
    )
    assert own.status_code == 201 and own.json()["unit"] == "ward-pa"
    own_id = own.json()["id"]
    missing = 987654
    for template in ("/api/patients/{}", "/api/patients/{}/associations"):
        r_missing = c.get(template.format(missing), headers=nurse_a)
        r_hidden = c.get(template.format(hidden["id"]), headers=nurse_a)
        assert r_missing.status_code == r_hidden.status_code == 404
        assert r_missing.json()["error"]["rule"] == r_hidden.json()["error"]["rule"]
    r = c.patch(f"/api/patients/{hidden['id']}", headers=nurse_a, json={"weight_kg": 60})
    assert r.status_code == 404
    assert c.get("/api/patients", params={"mrn": hidden["mrn"]}, headers=nurse_a).json() == []
    assert [p["id"] for p in c.get("/api/patients", headers=nurse_a).json()] == [own_id]
    # another unit's patient on an own pump, an own patient on another unit's pump
    r = c.post(assoc_path(pump_a, 1), headers=nurse_a, json={"patient_id": hidden["id"]})
    assert r.status_code == 404 and r.json()["error"]["field"] == "patient_id"
    r = c.post(assoc_path(pump_b, 1), headers=nurse_a, json={"patient_id": own_id})
    assert r.status_code == 404 and r.json()["error"]["field"] == "pump_id"
    assert c.delete(assoc_path(pump_b, 1), headers=nurse_a).status_code == 404
    # no moving a patient out of the unit, nor creating one elsewhere
    r = c.patch(f"/api/patients/{own_id}", headers=nurse_a, json={"unit": "ward-pb"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "unit"
    r = c.post(
        "/api/patients",
        headers=nurse_a,
        json={
            "mrn": "MRN-PA-2",
            "family_name": "Else",
            "given_name": "Where",
            "birth_date": "2001-03-04",
            "sex": "other",
            "unit": "ward-pb",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "unit"
    r = c.post(assoc_path(pump_a, 1), headers=nurse_a, json={"patient_id": own_id})
    assert r.status_code == 201
    # history: an unscoped reader sees every association, the unit nurse those of her pumps
    c.post(assoc_path(pump_b, 2), headers=env.h[Role.NURSE], json={"patient_id": own_id})
    full = c.get(f"/api/patients/{own_id}/associations", headers=env.h[Role.PHYSICIAN]).json()
    assert {h["pump_id"] for h in full} == {pump_a, pump_b}
    scoped = c.get(f"/api/patients/{own_id}/associations", headers=nurse_a).json()
    assert [h["pump_id"] for h in scoped] == [pump_a]


def test_the_database_keeps_one_open_association_per_channel(env: Env) -> None:
    pump_id, _key = env.enrol(None, "SN-DB")
    p = new_patient(env)
    db = env.app.state.ctx.db
    now = env.clock()

    def row(ended: bool) -> Association:
        return Association(
            pump_id=pump_id,
            channel=1,
            patient_id=p["id"],
            associated_by="x",
            associated_at=now,
            ended_by="x" if ended else None,
            ended_at=now if ended else None,
        )

    with db.write() as s:  # ended associations may repeat
        s.add_all([row(True), row(True), row(False)])
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(row(False))
    with db.read() as s:
        n = s.scalar(select(func.count()).where(Association.pump_id == pump_id))
    assert n == 3


def test_a_concurrent_association_is_refused_by_the_database(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests that both saw a free channel: the second insert hits the partial
    unique index and answers 409 like the check in code, with nothing stored or audited."""
    c, nurse = env.client, env.h[Role.NURSE]
    pump_id, _key = env.enrol(None, "SN-RACE")
    a, b = new_patient(env), new_patient(env)
    assert c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": a["id"]}).is_success
    starts = len(audit(env, "association.start"))
    monkeypatch.setattr(patients_api, "_open_on", lambda *_args: None)  # the check saw none
    r = c.post(assoc_path(pump_id, 1), headers=nurse, json={"patient_id": b["id"]})
    assert r.status_code == 409 and r.json()["error"]["field"] == "channel"
    assert c.get(f"/api/patients/{b['id']}/associations", headers=nurse).json() == []
    assert len(audit(env, "association.start")) == starts


_CHANNELS = [(0, 1), (0, 2), (1, 1), (1, 2)]  # (pump index, channel)
_ops = st.lists(
    st.tuples(st.sampled_from(["start", "end"]), st.integers(0, 3), st.integers(0, 2)),
    max_size=12,
)


@pytest.fixture(scope="module")
def fleet(env: Env) -> tuple[list[str], list[int]]:
    pumps = [env.enrol(None, f"SN-SEQ-{i}")[0] for i in range(2)]
    return pumps, [new_patient(env)["id"] for _ in range(3)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_any_sequence_keeps_one_open_association_per_channel(
    env: Env, fleet: tuple[list[str], list[int]], ops: list[tuple[str, int, int]]
) -> None:
    c, nurse = env.client, env.h[Role.NURSE]
    pumps, patients = fleet
    # the state left by earlier examples is the model's starting point
    open_now: dict[tuple[str, int], int] = {}
    with env.app.state.ctx.db.read() as s:
        for a in s.scalars(select(Association).where(Association.pump_id.in_(pumps))):
            if a.ended_at is None:
                open_now[(a.pump_id, a.channel)] = a.patient_id
    for op, slot, who in ops:
        pump_i, channel = _CHANNELS[slot]
        key = (pumps[pump_i], channel)
        if op == "start":
            r = c.post(assoc_path(*key), headers=nurse, json={"patient_id": patients[who]})
            assert r.status_code == (409 if key in open_now else 201), r.text
            open_now.setdefault(key, patients[who])
        else:
            r = c.delete(assoc_path(*key), headers=nurse)
            assert r.status_code == (200 if key in open_now else 404), r.text
            open_now.pop(key, None)
    with env.app.state.ctx.db.read() as s:
        rows = list(s.scalars(select(Association).where(Association.pump_id.in_(pumps))))
    still_open = [(a.pump_id, a.channel) for a in rows if a.ended_at is None]
    assert len(still_open) == len(set(still_open))
    assert {(a.pump_id, a.channel): a.patient_id for a in rows if a.ended_at is None} == open_now
    for patient_id in patients:
        listed = [
            h["id"] for h in c.get(f"/api/patients/{patient_id}/associations", headers=nurse).json()
        ]
        assert sorted(listed) == sorted(set(listed))
        assert set(listed) == {a.id for a in rows if a.patient_id == patient_id}


def test_migration_down_and_up_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        _down_and_up(db)
    finally:
        db.dispose()


def test_migration_on_postgres(pg_url: str) -> None:  # noqa: F811 (the fixture)
    db = Database(pg_url)
    try:
        _down_and_up(db)
        with db.write() as s:
            s.add(
                Pump(
                    id="P-pg-assoc",
                    serial="SN-PG-ASSOC",
                    model="M",
                    kind="lvp",
                    channel_count=1,
                    public_key="-",
                    key_id="0" * 16,
                    enrolled_at=FakeClock()(),
                    last_seq=0,
                    gaps=[],
                )
            )
            now = FakeClock()()
            s.add(
                Patient(
                    mrn="MRN-PG",
                    family_name="P",
                    given_name="G",
                    birth_date=now.date(),
                    sex="unknown",
                    created_at=now,
                    updated_at=now,
                )
            )
        with db.write() as s:
            patient_id = s.scalar(select(Patient.id).where(Patient.mrn == "MRN-PG"))
            s.add(_open_row("P-pg-assoc", patient_id))
        with pytest.raises(IntegrityError), db.write() as s:
            s.add(_open_row("P-pg-assoc", patient_id))
    finally:
        db.dispose()


def _open_row(pump_id: str, patient_id: int | None) -> Association:
    assert patient_id is not None
    return Association(
        pump_id=pump_id,
        channel=1,
        patient_id=patient_id,
        associated_by="x",
        associated_at=FakeClock()(),
    )


def _down_and_up(db: Database) -> None:
    """Head matches the models; 0006 goes down to 0005 (tables gone) and up again."""
    upgrade_to_head(db.engine)
    assert (head_revision() or "") >= "0006"
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with db.engine.connect() as conn:
        tables = set(db.engine.dialect.get_table_names(conn))
    assert "pumps" in tables and not {"patients", "associations"} & tables
    upgrade_to_head(db.engine)
    assert current_revision(db.engine) == head_revision()
