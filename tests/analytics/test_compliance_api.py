"""End to end: ward pumps program through DERS, their journal events go through the pump
gateway's store path, and GET /api/analytics/... reports them to the roles allowed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openinfusion.library import HardLimitError
from openinfusion.pump import therapies as T
from openinfusion.pump.ders_log import refusal_record
from openinfusion.pump.device import Record
from openinfusion.security import b64encode, build_envelope, generate_private_key, public_bytes
from openinfusion.server.app import create_app
from openinfusion.server.gateway_batch import handle_batch
from openinfusion.server.ward import ders_events
from openinfusion.server.ward.beds import build_pump
from openinfusion.server.ward.pumps import ScenarioPump
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


def wire_body(record: Record) -> dict[str, Any]:
    """An ``event`` body as the ward's pump link sends a journal record."""
    index = record.data.get("channel")
    return {
        "record_seq": record.seq,
        "t_s": record.t_s,
        "kind": record.kind,
        "data": json.loads(json.dumps(record.data)),
        "channel": index + 1 if isinstance(index, int) else None,
    }


def run_vasopressor_bed() -> list[Record]:
    """A vasopressor bed: library program; a tenfold dose blocked by the hard limit; the
    dose then entered above the soft maximum and overridden with a reason."""
    pump = build_pump("icu-vasopressor", "SER-V", random.Random(7))
    assert isinstance(pump, ScenarioPump)
    records: list[Record] = []
    pump.device.listener = records.append
    pump.start()
    pump.advance_to(600.0)
    current = pump.run.programmed[0]
    entry, conc = current.entry, current.concentration
    assert entry is not None and conc is not None and current.dose_unit is not None
    soft, hard = entry.limits.dose.soft_max, entry.limits.dose.hard_max
    assert soft is not None and hard is not None
    with pytest.raises(HardLimitError) as blocked:
        T.continuous(
            pump.run.ctx,
            drug=entry.drug,
            concentration=conc.text,
            dose=f"{hard * 10:g} {current.dose_unit.text}",
        )
    pump.device.ders_alert(0, refusal_record(blocked.value.verdict, entry))
    assert ders_events._reprogram(pump, (soft + hard) / 2, "per physician order")
    return [r for r in records if r.kind != "command"]


def run_lvp_bed() -> list[Record]:
    """Maintenance fluid as a basic infusion (no library) beside a library antibiotic."""
    pump = build_pump("lvp", "SER-L", random.Random(7))
    records: list[Record] = []
    pump.device.listener = records.append
    pump.start()
    return records


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    clock = FakeClock()
    app = create_app(make_settings(tmp_path_factory.mktemp("analytics-api")), clock=clock)
    with TestClient(app) as c:
        headers = {role: login(c, f"{role}1", pw) for role, pw in credentials(app).items()}
        for unit, serial, records in (
            ("ICU-3", "SER-V", run_vasopressor_bed()),
            ("Ward-5", "SER-L", run_lvp_bed()),
        ):
            token = c.post(
                "/api/enrolment-tokens", headers=headers["biomed"], json={"unit": unit}
            ).json()["token"]
            key = generate_private_key()
            enrolled = c.post(
                "/api/gateway/enrol",
                json={
                    "token": token,
                    "serial": serial,
                    "model": "M",
                    "kind": "syringe",
                    "channels": 2,
                    "public_key": b64encode(public_bytes(key.public_key())),
                },
            )
            assert enrolled.status_code == 200, enrolled.text
            pump_id = enrolled.json()["pump_id"]
            frames = [
                json.dumps(
                    build_envelope(
                        key,
                        type="event",
                        pump_id=pump_id,
                        seq=seq,
                        body=wire_body(record),
                        sent_at=clock(),
                    )
                )
                for seq, record in enumerate(records, start=1)
            ]
            result = handle_batch(app.state.ctx, pump_id, key.public_key(), frames, "test")
            assert result.ack_seq == len(frames) and result.close_code is None
            clock.advance(3600)
        yield c, headers


def test_compliance_of_real_pump_events(client: tuple[TestClient, Any]) -> None:
    c, h = client
    r = c.get("/api/analytics/compliance", headers=h["pharmacist"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == {"programs": 4, "library": 3, "basic": 1, "unknown": 0, "rate": 0.75}
    units = {u["unit"]: (u["library"], u["basic"]) for u in body["by_unit"]}
    assert units == {"ICU-3": (2, 0), "Ward-5": (1, 1)}
    assert [a["care_area"] for a in body["by_care_area"]] == ["Adult ICU"]


def test_overrides_of_real_pump_events(client: tuple[TestClient, Any]) -> None:
    c, h = client
    r = c.get("/api/analytics/overrides?min_overrides=1", headers=h["biomed"])
    assert r.status_code == 200, r.text
    t = r.json()["total"]
    assert (t["overridden"], t["hard_blocks"], t["reprogrammed"], t["cancelled"]) == (1, 1, 1, 0)
    assert t["reasons"] == [{"reason": "per physician order", "count": 1}]
    (candidate,) = r.json()["refinement"]
    assert candidate["bound"] == "soft_max"
    assert candidate["suggestion"]["suggested"] < candidate["hard_limit"]


def test_alarms_endpoint_and_unit_filter(client: tuple[TestClient, Any]) -> None:
    c, h = client
    r = c.get("/api/analytics/alarms?unit=Ward-5", headers=h["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["filters"]["unit"] == "Ward-5"
    assert r.json()["infusion_hours"] == 0.0  # events only: no status, no infusion rows


@pytest.mark.parametrize("role", ["nurse", "physician", "monitor"])
def test_clinical_roles_are_refused(client: tuple[TestClient, Any], role: str) -> None:
    c, h = client
    assert c.get("/api/analytics/compliance", headers=h[role]).status_code == 403


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2026-02-30", "since"),
        ("since=2026-11-05&until=2026-11-01", "until"),
        ("bucket=month", "bucket"),
    ],
)
def test_bad_filters_are_422_naming_the_field(
    client: tuple[TestClient, Any], query: str, field: str
) -> None:
    c, h = client
    r = c.get(f"/api/analytics/compliance?{query}", headers=h["pharmacist"])
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field
