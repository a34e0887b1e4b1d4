"""DERS compliance on a seeded fleet whose figures are known, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.analytics.compliance import bucket_start, compliance_report
from openinfusion.analytics.window import ReportWindow, parse_window
from openinfusion.errors import InputError
from openinfusion.server.db import Database
from tests.analytics._safety_fleet import Fleet, at, postgres_db, sqlite_db


def seed(fleet: Fleet) -> Fleet:
    """Week of Mon 2 Nov and Tue 10 Nov 2026; ICU-3 (P1, P2), Ward-5 (P3), P4 unassigned.

    | pump | 2 Nov | 10 Nov |
    |---|---|---|
    | P1 (ICU-3) | 3 library | 1 basic |
    | P2 (ICU-3) | 1 library, 1 basic | |
    | P3 (Ward-5, Med-Surg) | 1 library, 3 basic | 2 library |
    | P4 (no unit) | 1 program without DERS facts | |
    """
    f = fleet.pump("P1", "ICU-3").pump("P2", "ICU-3").pump("P3", "Ward-5").pump("P4", None)
    for h in (1, 2, 3):
        f.program("P1", at(h))
    f.basic("P1", at(5, days=8))
    f.program("P2", at(4)).basic("P2", at(6))
    f.program("P3", at(1), care_area="Adult Med-Surg")
    for h in (2, 3, 4):
        f.basic("P3", at(h), care_area="Adult Med-Surg")
    for h in (1, 2):
        f.program("P3", at(h, days=8), care_area="Adult Med-Surg")
    f.legacy_program("P4", at(7))
    # neither a refused program nor another event is an infusion start
    f.refused("P1", at(8), outcome="blocked")
    f._event("P2", at(9), "started", {})
    return f


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        database = sqlite_db(tmp_path_factory.mktemp("compliance"))
        seed(Fleet()).commit(database)
        yield database
        database.dispose()
    else:
        with postgres_db() as database:
            seed(Fleet()).commit(database)
            yield database


def report(db: Database, bucket: str = "day", **filters: Any) -> dict[str, Any]:
    with db.read() as session:
        return compliance_report(session, parse_window(**filters), bucket)


def row(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    return next(r for r in rows if r[key] == value)


def counts(r: dict[str, Any]) -> tuple[int, int, int, float | None]:
    return r["library"], r["basic"], r["unknown"], r["rate"]


def test_totals_areas_and_units_are_exact(db: Database) -> None:
    r = report(db)
    assert r["total"] == {"programs": 13, "library": 7, "basic": 5, "unknown": 1, "rate": 7 / 12}
    assert counts(row(r["by_care_area"], "care_area", "Adult ICU")) == (4, 2, 0, 4 / 6)
    assert counts(row(r["by_care_area"], "care_area", "Adult Med-Surg")) == (3, 3, 0, 0.5)
    assert counts(row(r["by_care_area"], "care_area", "(no care area)")) == (0, 0, 1, None)
    assert counts(row(r["by_unit"], "unit", "ICU-3")) == (4, 2, 0, 4 / 6)
    assert counts(row(r["by_unit"], "unit", "Ward-5")) == (3, 3, 0, 0.5)
    assert counts(row(r["by_unit"], "unit", "(no unit)")) == (0, 0, 1, None)


def test_day_and_week_buckets(db: Database) -> None:
    days = report(db, "day")["by_time"]
    assert [(d["start"], counts(d)) for d in days] == [
        ("2026-11-02", (5, 4, 1, 5 / 9)),
        ("2026-11-10", (2, 1, 0, 2 / 3)),
    ]
    weeks = report(db, "week")
    assert [w["start"] for w in weeks["by_time"]] == ["2026-11-02", "2026-11-09"]
    per_unit = {(w["unit"], w["start"]): counts(w) for w in weeks["by_unit_time"]}
    assert per_unit[("ICU-3", "2026-11-09")] == (0, 1, 0, 0.0)
    assert per_unit[("Ward-5", "2026-11-09")] == (2, 0, 0, 1.0)


def test_since_until_and_unit_filters(db: Database) -> None:
    assert counts(report(db, since="2026-11-09")["total"]) == (2, 1, 0, 2 / 3)
    assert counts(report(db, until="2026-11-03")["total"]) == (5, 4, 1, 5 / 9)
    # 02:00 inclusive to 03:00 exclusive: P1's second program, P3's library and a basic
    window = {"since": "2026-11-02T02:00:00Z", "until": "2026-11-02T03:00:00"}
    assert counts(report(db, **window)["total"]) == (1, 1, 0, 0.5)
    icu = report(db, unit="ICU-3")
    assert counts(icu["total"]) == (4, 2, 0, 4 / 6)
    assert [u["unit"] for u in icu["by_unit"]] == ["ICU-3"]
    assert report(db, unit="Nowhere")["total"]["programs"] == 0
    assert report(db, unit="Nowhere")["total"]["rate"] is None


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"since": "2026-13-01"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"since": "2026-11-05", "until": "2026-11-01"}, "until"),
        ({"unit": "ICU;DROP"}, "unit"),
    ],
)
def test_bad_filters_name_the_field(filters: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_window(**filters)
    assert err.value.field == field


def test_bad_bucket_names_the_field(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path)
    with db.read() as session, pytest.raises(InputError, match="day or week"):
        compliance_report(session, ReportWindow(), "month")


def test_weeks_start_on_monday() -> None:
    # 1970-01-01 (day 0) was a Thursday; its week began on Monday 1969-12-29
    assert bucket_start(0, "week").isoformat() == "1969-12-29"
    assert bucket_start(20394, "week").isoformat() == "2025-10-27"  # 2025-11-02, a Sunday
    assert bucket_start(20394, "day").isoformat() == "2025-11-02"


# ---- properties -------------------------------------------------------------------------

PUMPS = [("A", "U1"), ("B", "U1"), ("C", "U2"), ("D", None)]
programs = st.lists(
    st.tuples(
        st.sampled_from([p for p, _ in PUMPS]),
        st.floats(0, 20 * 24, allow_nan=False),  # hours after T0
        st.sampled_from(["library", "basic", "legacy"]),
        st.sampled_from(["Adult ICU", "PICU", "Oncology"]),
    ),
    max_size=40,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = sqlite_db(tmp_path_factory.mktemp("compliance-prop"))
    yield database
    database.dispose()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=programs, bucket=st.sampled_from(["day", "week"]))
def test_rate_bounded_and_groups_sum_to_the_total(
    scratch: Database, items: list[tuple[str, float, str, str]], bucket: str
) -> None:
    """Compliance is in [0, 1] everywhere, and per unit, per area and per bucket the counts
    add up to the fleet total (nothing counted twice, nothing lost)."""
    with scratch.write() as session:
        from sqlalchemy import delete

        from openinfusion.server.models import Pump, PumpMessage

        session.execute(delete(PumpMessage))
        session.execute(delete(Pump))
    fleet = Fleet()
    for pump, unit in PUMPS:
        fleet.pump(pump, unit)
    for pump, hours, kind, area in items:
        if kind == "library":
            fleet.program(pump, at(hours), care_area=area)
        elif kind == "basic":
            fleet.basic(pump, at(hours), care_area=area)
        else:
            fleet.legacy_program(pump, at(hours))
    fleet.commit(scratch)
    with scratch.read() as session:
        r = compliance_report(session, ReportWindow(), bucket)
    total = r["total"]
    assert total["programs"] == len(items)
    assert total["library"] == sum(k == "library" for _, _, k, _ in items)
    for key in ("by_care_area", "by_unit", "by_time", "by_unit_time"):
        for field in ("programs", "library", "basic", "unknown"):
            assert sum(g[field] for g in r[key]) == total[field], (key, field)
        for g in r[key]:
            assert g["rate"] is None or 0.0 <= g["rate"] <= 1.0
            assert g["rate"] is None or g["library"] + g["basic"] > 0
