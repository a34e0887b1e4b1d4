"""Daily telemetry read from the server's store: what the pumps reported, per day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from openinfusion.analytics.tables import ServiceRecord
from openinfusion.analytics.telemetry import telemetry_from_db
from openinfusion.server.models import Alarm, Base, Infusion, Pump, PumpMessage

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


def _pump(s: Session, pid: str, kind: str = "syringe", enrolled_days: float = 100) -> Pump:
    p = Pump(
        id=pid,
        serial=f"S-{pid}",
        model="M",
        kind=kind,
        channel_count=1,
        public_key="k",
        key_id="k",
        enrolled_at=NOW - timedelta(days=enrolled_days),
    )
    s.add(p)
    return p


class _Feed:
    def __init__(self, s: Session, pid: str) -> None:
        self.s, self.pid, self.seq = s, pid, 0

    def msg(self, kind: str, at: datetime, body: dict[str, Any]) -> None:
        self.seq += 1
        self.s.add(
            PumpMessage(
                pump_id=self.pid,
                seq=self.seq,
                type=kind,
                sent_at=at.isoformat(),
                received_at=at,
                body=body,
                digest="d",
                signature="s",
            )
        )


def test_run_time_alarms_hours_effort_and_service(session: Session) -> None:
    _pump(session, "a")
    _pump(session, "b", kind="lvp")
    session.flush()
    feed = _Feed(session, "a")
    day = NOW - timedelta(days=1)  # yesterday, 18:00
    start = day.replace(hour=8)
    # 5 h on battery using 10 % of charge: 50 h on a full charge
    for k in range(6):
        feed.msg(
            "status",
            start + timedelta(hours=k),
            {"t_s": 1000.0 + 3600 * k, "battery_percent": 90.0 - 2.0 * k, "on_mains": False},
        )
    # plugged in: charging is not counted as use
    feed.msg(
        "status",
        start + timedelta(hours=7),
        {"t_s": 30000.0, "battery_percent": 95.0, "on_mains": True},
    )
    feed.msg(
        "event", start + timedelta(hours=2), {"kind": "self_test", "data": {"drive_effort": 1.4}}
    )
    feed.msg(
        "event", start + timedelta(hours=3), {"kind": "self_test", "data": {"drive_effort": "x"}}
    )
    for code, n in (
        ("occlusion_downstream", 3),
        ("door_open", 2),
        ("air_in_line", 1),
        ("near_end", 4),
    ):
        for k in range(n):
            session.add(
                Alarm(
                    pump_id="a",
                    code=code,
                    priority="high",
                    raised_at=start + timedelta(minutes=10 * k),
                    raised_seq=1,
                )
            )
    session.add(
        Infusion(
            pump_id="a",
            channel=1,
            started_at=day.replace(hour=20),
            started_seq=1,
            ended_at=NOW.replace(hour=4),
        )
    )
    session.add(
        ServiceRecord(
            pump_id="b",
            kind="preventive",
            serviced_at=NOW - timedelta(days=3),
            serviced_by="biomed1",
        )
    )
    session.commit()

    tel = telemetry_from_db(session, NOW, days=7)
    assert tel.pump_ids == ["a", "b"] and tel.kinds == ["syringe", "lvp"]
    assert tel.days == 7 and tel.first_day == (NOW - timedelta(days=6)).date().isoformat()
    a = 0
    assert tel.runtime_h[a, 5] == pytest.approx(50.0)
    assert tel.battery_h[a, 5] == pytest.approx(5.0)
    assert np.isnan(tel.runtime_h[a, 6])
    assert (tel.occlusion[a, 5], tel.door[a, 5], tel.air[a, 5]) == (3, 2, 1)
    assert tel.infusion_h[a, 5] == pytest.approx(4.0) and tel.infusion_h[a, 6] == pytest.approx(4.0)
    assert tel.effort[a, 5] == pytest.approx(1.4)
    # days since service at the last day: enrolment for a, the service record for b
    assert tel.service_age_d[0] + 6 == pytest.approx(100.0)
    assert tel.service_age_d[1] + 6 == pytest.approx(3.0)


def test_decommissioned_pumps_are_left_out_and_days_checked(session: Session) -> None:
    _pump(session, "a")
    gone = _pump(session, "z")
    gone.decommissioned_at = NOW
    session.commit()
    assert telemetry_from_db(session, NOW, days=3).pump_ids == ["a"]
    with pytest.raises(ValueError, match="days 0"):
        telemetry_from_db(session, NOW, days=0)
