"""Decommissioning a pump ends its open patient associations in the same transaction:
each one audited as ``association.end`` and announced live, closed ones left as they were,
and nothing ended when the decommissioning itself is refused."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from openinfusion.server.app import create_app
from openinfusion.server.models import Association, Pump
from openinfusion.server.permissions import Role
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)
from tests.server.test_app_permissions import Env

_mrns = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    clock = FakeClock()
    app = create_app(make_settings(tmp_path_factory.mktemp("decommission")), clock=clock)
    with TestClient(app) as client:
        yield Env(client, app, clock)


def _patient(env: Env) -> dict[str, Any]:
    r = env.client.post(
        "/api/patients",
        headers=env.h[Role.NURSE],
        json={
            "mrn": f"MRN-DEC-{next(_mrns):04d}",
            "family_name": "Doe",
            "given_name": "Sam",
            "birth_date": "1950-02-03",
            "sex": "male",
            "weight_kg": 80.0,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _associate(env: Env, pump_id: str, channel: int, patient_id: int) -> dict[str, Any]:
    r = env.client.post(
        f"/api/pumps/{pump_id}/channels/{channel}/association",
        headers=env.h[Role.NURSE],
        json={"patient_id": patient_id},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _audit(env: Env, action: str, pump_id: str) -> list[dict[str, Any]]:
    r = env.client.get(
        "/api/audit", params={"action": action, "limit": 1000}, headers=env.h[Role.ADMIN]
    )
    assert r.status_code == 200
    return [e for e in r.json() if e["object"].startswith(f"pump:{pump_id}")]


def _associations(env: Env, pump_id: str) -> list[Association]:
    with env.app.state.ctx.db.read() as s:
        return list(
            s.scalars(
                select(Association).where(Association.pump_id == pump_id).order_by(Association.id)
            )
        )


def test_decommissioning_ends_every_open_association_audited(env: Env) -> None:
    pump_id, _key = env.enrol(None, "SN-DEC-1")  # two channels
    a, b = _patient(env), _patient(env)
    first = _associate(env, pump_id, 1, a["id"])
    r = env.client.delete(f"/api/pumps/{pump_id}/channels/1/association", headers=env.h[Role.NURSE])
    assert r.status_code == 200  # ended at the bedside before: stays as it was
    on1 = _associate(env, pump_id, 1, b["id"])
    on2 = _associate(env, pump_id, 2, a["id"])
    env.clock.advance(30)
    sub = env.app.state.ctx.bus.subscribe()
    try:
        r = env.client.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.BIOMED])
        assert r.status_code == 204
        events = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait())
    finally:
        env.app.state.ctx.bus.unsubscribe(sub)

    rows = {row.id: row for row in _associations(env, pump_id)}
    with env.app.state.ctx.db.read() as s:
        pump = s.get(Pump, pump_id)
        assert pump is not None and pump.decommissioned_at is not None
        decommissioned_at = pump.decommissioned_at
    assert rows[first["id"]].ended_by == "nurse1"  # untouched
    assert rows[first["id"]].ended_at is not None
    assert rows[first["id"]].ended_at < decommissioned_at
    for opened in (on1, on2):
        row = rows[opened["id"]]
        assert row.ended_by == "biomed1" and row.ended_at == decommissioned_at
    assert all(row.ended_at is not None for row in rows.values())

    ends = _audit(env, "association.end", pump_id)
    by_decommission = [e for e in ends if e["actor"] == "biomed1"]
    assert sorted(e["details"]["association_id"] for e in by_decommission) == sorted(
        [on1["id"], on2["id"]]
    )
    assert {e["details"]["mrn"] for e in by_decommission} == {a["mrn"], b["mrn"]}
    assert all(e["details"]["reason"] == "pump decommissioned" for e in by_decommission)
    decommission = _audit(env, "pump.decommission", pump_id)
    assert len(decommission) == 1
    # the associations end before the decommissioning entry, in the same transaction
    assert max(e["seq"] for e in by_decommission) < decommission[0]["seq"]
    ended = [e for e in events if e.get("type") == "association_ended"]
    assert sorted(e["association_id"] for e in ended) == sorted([on1["id"], on2["id"]])

    hist = env.client.get(f"/api/patients/{a['id']}/associations", headers=env.h[Role.NURSE]).json()
    assert [h["open"] for h in hist] == [False, False]


def test_refused_decommissioning_ends_nothing(env: Env) -> None:
    pump_id, _key = env.enrol("ward-dec", "SN-DEC-2")
    p = _patient(env)
    opened = _associate(env, pump_id, 1, p["id"])
    # a nurse may not decommission: refused, and the association stays open
    r = env.client.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.NURSE])
    assert r.status_code == 403
    assert [row.ended_at for row in _associations(env, pump_id)] == [None]
    assert env.client.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.BIOMED]).status_code == 204
    # a second decommissioning is refused and changes nothing further
    row = _associations(env, pump_id)[0]
    assert row.id == opened["id"] and row.ended_by == "biomed1"
    r = env.client.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.BIOMED])
    assert r.status_code == 409
    assert len(_audit(env, "association.end", pump_id)) == 1


def test_decommissioning_rolls_back_whole_when_an_association_cannot_end(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The associations end in the decommissioning's own transaction: if anything after
    them fails, neither the pump nor its associations change."""
    from openinfusion.server.api import pumps as pumps_api

    pump_id, _key = env.enrol(None, "SN-DEC-3")
    p = _patient(env)
    _associate(env, pump_id, 2, p["id"])
    real = pumps_api._end_associations

    def end_then_fail(*args: Any, **kw: Any) -> None:
        real(*args, **kw)
        raise RuntimeError("disk full")

    monkeypatch.setattr(pumps_api, "_end_associations", end_then_fail)
    with pytest.raises(RuntimeError):
        env.client.delete(f"/api/pumps/{pump_id}", headers=env.h[Role.BIOMED])
    monkeypatch.undo()
    assert [row.ended_at for row in _associations(env, pump_id)] == [None]
    with env.app.state.ctx.db.read() as s:
        pump = s.get(Pump, pump_id)
        assert pump is not None and pump.decommissioned_at is None
    assert _audit(env, "association.end", pump_id) == []
