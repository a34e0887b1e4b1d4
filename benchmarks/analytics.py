"""Safety reports on a year of a pump fleet, beside a plain scan of the same rows.

Run: ``uv run python benchmarks/analytics.py`` (a year of 500 pumps; ``--json`` for machine
output; ``--db postgresql://...`` to run on an empty PostgreSQL database instead of SQLite).

The fleet is written straight into the server tables: per pump and day ``--programs``
``programmed`` events (with DERS facts: 8 % basic infusions, 10 % soft-limit overrides
with a reason, 1 % hard blocks each followed by a reprogram), ``--alarms`` alarms (a third
self-clearing within 10 s, half acknowledged) and ``--infusions`` infusions. Each report
(compliance, overrides, alarms) runs over the whole year; the baseline, measured in the
same run on the same database, is the plainest read of the rows the report reads: a
``COUNT(*)`` plus the length of every event body, and ``COUNT(*)`` of alarms and infusions.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from openinfusion.analytics.safety import run_report
from openinfusion.analytics.window import ReportWindow
from openinfusion.server.db import Database
from openinfusion.server.migrate import upgrade_to_head

T0 = datetime(2025, 12, 1, tzinfo=UTC)
UNITS = ("ICU-1", "ICU-2", "PICU", "Med-Surg 4", "Med-Surg 5", "Oncology", "ED", "OR")
AREAS = {"ICU-1": "Adult ICU", "ICU-2": "Adult ICU", "PICU": "Paediatric ICU"}
DRUGS = (("norepinephrine", 1.0, 3.0), ("propofol", 50.0, 80.0), ("heparin", 25.0, 40.0))
CODES = (
    ("occlusion_downstream", "high"),
    ("air_in_line", "high"),
    ("near_empty", "medium"),
    ("battery_low", "medium"),
    ("kvo", "low"),
)
REASONS = ("titrating to MAP goal", "per physician order", "dose confirmed with prescriber")


def _naive(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _ders(rng: random.Random, area: str) -> tuple[str, dict[str, Any]]:
    roll = rng.random()
    drug, soft, hard = rng.choice(DRUGS)
    base: dict[str, Any] = {
        "library": True,
        "drug": drug,
        "care_area": area,
        "verdict": "ok",
        "dose": soft * 0.5,
        "alerts": [],
        "override_reason": None,
        "after_alert": None,
    }
    if roll < 0.08:
        return "programmed", {
            **base,
            "library": False,
            "drug": None,
            "verdict": "soft",
            "override_reason": "maintenance fluid, no drug",
        }
    if roll < 0.18:
        value = soft + (hard - soft) * rng.random() * 0.9
        crossed = {
            "parameter": "dose",
            "value": value,
            "unit": "x",
            "level": "soft",
            "bound": "soft_max",
            "limit": soft,
            "soft_limit": soft,
            "hard_limit": hard,
        }
        return "programmed", {
            **base,
            "verdict": "soft",
            "dose": value,
            "alerts": [crossed],
            "override_reason": rng.choice(REASONS),
        }
    if roll < 0.19:
        crossed = {
            "parameter": "dose",
            "value": hard * 10,
            "unit": "x",
            "level": "hard",
            "bound": "hard_max",
            "limit": hard,
            "soft_limit": soft,
            "hard_limit": hard,
        }
        return "ders_alert", {
            **base,
            "verdict": "hard",
            "alerts": [crossed],
            "outcome": "blocked",
            "level": "hard",
        }
    if roll < 0.20:
        return "programmed", {**base, "after_alert": "hard"}
    return "programmed", base


def build_fleet(db: Database, pumps: int, days: int, per_day: dict[str, int], seed: int) -> int:
    """Write the fleet; returns the number of rows written."""
    rng = random.Random(seed)
    pump_rows, messages, alarms, infusions = [], [], [], []
    for p in range(pumps):
        pid = f"P{p:04d}"
        unit = UNITS[p % len(UNITS)]
        area = AREAS.get(unit, "Adult Med-Surg")
        pump_rows.append(
            {
                "id": pid,
                "serial": f"S{p:05d}",
                "unit": unit,
                "enrolled": _naive(T0 - timedelta(days=1)),
            }
        )
        seq = 0
        for day in range(days):
            start = T0 + timedelta(days=day)
            for _ in range(per_day["programs"]):
                seq += 1
                kind, ders = _ders(rng, area)
                data = (
                    {"channel": 0, "ders": ders} if kind == "programmed" else {"channel": 0, **ders}
                )
                when = start + timedelta(seconds=rng.uniform(0, 86400))
                messages.append(
                    {
                        "pump_id": pid,
                        "seq": seq,
                        "sent": when.isoformat(),
                        "received": _naive(when),
                        "body": json.dumps({"kind": kind, "channel": 1, "data": data}),
                    }
                )
            for _ in range(per_day["alarms"]):
                seq += 1
                code, priority = rng.choice(CODES)
                raised = start + timedelta(seconds=rng.uniform(0, 86400))
                clear_s = rng.uniform(1, 9) if rng.random() < 0.33 else rng.uniform(30, 900)
                ack = rng.uniform(5, 300) if rng.random() < 0.5 else None
                alarms.append(
                    {
                        "pump_id": pid,
                        "channel": 1,
                        "code": code,
                        "priority": priority,
                        "raised": _naive(raised),
                        "seq": seq,
                        "cleared": _naive(raised + timedelta(seconds=clear_s)),
                        "acked": _naive(raised + timedelta(seconds=ack)) if ack else None,
                    }
                )
            for _ in range(per_day["infusions"]):
                seq += 1
                begin = start + timedelta(seconds=rng.uniform(0, 86400))
                end = begin + timedelta(hours=rng.uniform(0.5, 30))
                infusions.append(
                    {"pump_id": pid, "started": _naive(begin), "seq": seq, "ended": _naive(end)}
                )
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pumps (id, serial, model, kind, channel_count, unit, public_key,"
                " key_id, enrolled_at, last_seq, gaps) VALUES (:id, :serial, 'OI-Syringe 50',"
                " 'syringe', 2, :unit, 'k', 'kid', :enrolled, 0, '[]')"
            ),
            pump_rows,
        )
        conn.execute(
            text(
                "INSERT INTO pump_messages (pump_id, seq, type, sent_at, received_at, body,"
                " digest, signature) VALUES (:pump_id, :seq, 'event', :sent, :received, :body,"
                " 'd', 's')"
            ),
            messages,
        )
        conn.execute(
            text(
                "INSERT INTO alarms (pump_id, channel, code, priority, raised_at, raised_seq,"
                " cleared_at, acknowledged_at) VALUES (:pump_id, :channel, :code, :priority,"
                " :raised, :seq, :cleared, :acked)"
            ),
            alarms,
        )
        conn.execute(
            text(
                "INSERT INTO infusions (pump_id, channel, drug, volume_infused_ml,"
                " volume_at_start_ml, started_at, started_seq, ended_at) VALUES (:pump_id, 1,"
                " 'x', 0, 0, :started, :seq, :ended)"
            ),
            infusions,
        )
    return len(pump_rows) + len(messages) + len(alarms) + len(infusions)


def baseline(db: Database) -> None:
    """The plainest read of the same rows: count them and touch every event body."""
    with db.engine.connect() as conn:
        conn.execute(
            text("SELECT COUNT(*), SUM(LENGTH(body)) FROM pump_messages WHERE type = 'event'")
        ).one()
        conn.execute(text("SELECT COUNT(*) FROM alarms")).one()
        conn.execute(text("SELECT COUNT(*) FROM infusions")).one()


def timed(fn: Any, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--programs", type=int, default=4, help="programs per pump-day")
    parser.add_argument("--alarms", type=int, default=3, help="alarms per pump-day")
    parser.add_argument("--infusions", type=int, default=2, help="infusions per pump-day")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", default=None, help="an empty database URL (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'fleet.db'}"
        if url.startswith("postgresql://"):
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        db = Database(url)
        upgrade_to_head(db.engine)
        t = time.perf_counter()
        per_day = {"programs": args.programs, "alarms": args.alarms, "infusions": args.infusions}
        rows = build_fleet(db, args.pumps, args.days, per_day, seed=1)
        build_s = time.perf_counter() - t
        base_s = timed(lambda: baseline(db), args.repeats)
        window = ReportWindow()
        now = T0 + timedelta(days=args.days)
        reports: dict[str, float] = {}
        figures: dict[str, Any] = {}
        for name in ("compliance", "overrides", "alarms"):
            out: dict[str, Any] = {}

            def run(name: str = name, out: dict[str, Any] = out) -> None:
                with db.read() as session:
                    out["r"] = run_report(name, session, window, None, now=now)

            reports[name] = timed(run, args.repeats)
            figures[name] = out["r"]["total"]
        db.dispose()
    result = {
        "pumps": args.pumps,
        "days": args.days,
        "rows": rows,
        "build_s": round(build_s, 2),
        "baseline_scan_s": round(base_s, 4),
        "report_s": {k: round(v, 4) for k, v in reports.items()},
        "ratio_to_scan": {k: round(v / base_s, 2) for k, v in reports.items()},
        "compliance_rate": figures["compliance"]["rate"],
        "override_rate": figures["overrides"]["override_rate"],
        "alarms_per_1000_infusion_hours": figures["alarms"]["per_1000_infusion_hours"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.pumps} pumps x {args.days} days: {rows:,} rows (written in {build_s:.1f} s)\n"
        f"baseline scan of the same rows: {base_s * 1000:.0f} ms"
    )
    for name, seconds in reports.items():
        print(f"  {name:<11} {seconds * 1000:8.0f} ms  ({seconds / base_s:.1f}x the scan)")
    print(
        f"compliance {result['compliance_rate']:.3f}, override rate "
        f"{result['override_rate']:.3f}, alarms/1000 infusion-h "
        f"{result['alarms_per_1000_infusion_hours']:.1f}"
    )


if __name__ == "__main__":
    main()
