"""A seeded fleet for the safety reports: pumps, DERS events, infusions and alarms written
straight into the server tables (the gateway path is exercised separately), so every figure
of a report is known in advance."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from openinfusion.server.db import Database
from openinfusion.server.migrate import upgrade_to_head
from openinfusion.server.models import Alarm, Infusion, Pump, PumpMessage

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def at(hours: float = 0.0, days: float = 0.0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def sqlite_db(tmp_path: Path, name: str = "fleet.db") -> Database:
    db = Database(f"sqlite:///{tmp_path / name}")
    upgrade_to_head(db.engine)
    return db


@contextmanager
def postgres_db() -> Iterator[Database]:
    """A throwaway PostgreSQL database with the schema; skips (fails under CI=true) when
    PostgreSQL at 127.0.0.1:5432 is unreachable."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL at 127.0.0.1:5432 and it is unreachable: {reason}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({reason})")
    name = f"oi_analytics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        upgrade_to_head(db.engine)
        yield db
    finally:
        db.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alert(
    value: float,
    bound: str,
    limit: float,
    hard_limit: float | None,
    parameter: str = "dose",
    unit: str = "mcg/kg/min",
) -> dict[str, Any]:
    level = "hard" if bound.startswith("hard") else "soft"
    return {
        "parameter": parameter,
        "value": value,
        "unit": unit,
        "level": level,
        "bound": bound,
        "limit": limit,
        "soft_limit": limit if level == "soft" else None,
        "hard_limit": hard_limit,
    }


class Fleet:
    """Builds rows; ``commit`` writes them in one transaction."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.seq: dict[str, int] = {}

    def pump(self, pump_id: str, unit: str | None) -> Fleet:
        self.rows.append(
            Pump(
                id=pump_id,
                serial=f"S-{pump_id}",
                model="OI-Syringe 50",
                kind="syringe",
                channel_count=2,
                unit=unit,
                public_key="k" * 43,
                key_id="kid",
                enrolled_at=T0 - timedelta(days=30),
                last_seq=0,
                gaps=[],
            )
        )
        self.seq[pump_id] = 0
        return self

    def _event(self, pump_id: str, when: datetime, kind: str, data: dict[str, Any]) -> None:
        self.seq[pump_id] += 1
        body = {"kind": kind, "channel": 1, "data": {"channel": 0, **data}}
        self.rows.append(
            PumpMessage(
                pump_id=pump_id,
                seq=self.seq[pump_id],
                type="event",
                sent_at=when.isoformat(),
                received_at=when,
                body=body,
                digest=hashlib.sha256(json.dumps(body).encode()).hexdigest(),
                signature="s" * 86,
            )
        )

    def program(
        self,
        pump_id: str,
        when: datetime,
        *,
        library: bool = True,
        drug: str | None = "norepinephrine",
        care_area: str | None = "Adult ICU",
        verdict: str = "ok",
        override_reason: str | None = None,
        after_alert: str | None = None,
        alerts: tuple[dict[str, Any], ...] = (),
        dose: float | None = 0.1,
    ) -> Fleet:
        ders = {
            "library": library,
            "drug": drug if library else None,
            "entry": drug,
            "care_area": care_area,
            "verdict": verdict,
            "dose": dose if library else None,
            "dose_unit": "mcg/kg/min" if library else None,
            "rate_ml_h": 5.0,
            "alerts": list(alerts),
            "override_reason": override_reason,
            "after_alert": after_alert,
        }
        self._event(pump_id, when, "programmed", {"therapy": "continuous", "ders": ders})
        return self

    def basic(self, pump_id: str, when: datetime, care_area: str = "Adult ICU") -> Fleet:
        return self.program(
            pump_id,
            when,
            library=False,
            care_area=care_area,
            verdict="soft",
            override_reason="maintenance fluid, no drug",
        )

    def legacy_program(self, pump_id: str, when: datetime) -> Fleet:
        """A program from a pump that reports no DERS facts."""
        self._event(pump_id, when, "programmed", {"therapy": "continuous", "drug": "x"})
        return self

    def refused(
        self,
        pump_id: str,
        when: datetime,
        *,
        outcome: str,
        drug: str = "norepinephrine",
        care_area: str = "Adult ICU",
        alerts: tuple[dict[str, Any], ...] = (),
    ) -> Fleet:
        level = "hard" if outcome == "blocked" else "soft"
        data = {
            "library": True,
            "drug": drug,
            "entry": drug,
            "care_area": care_area,
            "verdict": level,
            "dose": None,
            "dose_unit": None,
            "rate_ml_h": None,
            "alerts": list(alerts),
            "outcome": outcome,
            "level": level,
        }
        self._event(pump_id, when, "ders_alert", data)
        return self

    def infusion(self, pump_id: str, start: datetime, end: datetime | None) -> Fleet:
        self.seq[pump_id] += 1
        self.rows.append(
            Infusion(
                pump_id=pump_id,
                channel=1,
                drug="norepinephrine",
                started_at=start,
                started_seq=self.seq[pump_id],
                ended_at=end,
                end_reason="stopped" if end else None,
            )
        )
        return self

    def alarm(
        self,
        pump_id: str,
        raised: datetime,
        *,
        code: str = "occlusion_downstream",
        priority: str = "high",
        cleared_s: float | None = None,
        acked_s: float | None = None,
        channel: int | None = 1,
    ) -> Fleet:
        self.seq[pump_id] += 1
        self.rows.append(
            Alarm(
                pump_id=pump_id,
                channel=channel,
                code=code,
                priority=priority,
                raised_at=raised,
                raised_seq=self.seq[pump_id],
                cleared_at=raised + timedelta(seconds=cleared_s) if cleared_s is not None else None,
                acknowledged_at=raised + timedelta(seconds=acked_s)
                if acked_s is not None
                else None,
            )
        )
        return self

    def commit(self, db: Database) -> None:
        with db.write() as session:
            pumps = [r for r in self.rows if isinstance(r, Pump)]
            session.add_all(pumps)
            session.flush()
            session.add_all([r for r in self.rows if not isinstance(r, Pump)])
        self.rows.clear()
