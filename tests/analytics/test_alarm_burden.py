"""Alarm burden on a seeded fleet whose figures are known (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.analytics.alarm_burden import _bed_days, alarm_report
from openinfusion.analytics.window import parse_window
from openinfusion.errors import InputError
from openinfusion.server.db import Database
from tests.analytics._safety_fleet import Fleet, at, postgres_db, sqlite_db

WINDOW = {"since": "2026-11-02", "until": "2026-11-04"}
OCCL, AIR = "occlusion_downstream", "air_in_line"


def seed(f: Fleet) -> Fleet:
    """Two days (2-3 Nov 2026). Infusions: A 24 h (1 bed-day), B 24 h over midnight
    (2 bed-days), C open since 1 Nov 18:00 (48 h and 2 bed-days inside the window)."""
    f.pump("A", "ICU-3").pump("B", "ICU-3").pump("C", "Ward-5")
    f.infusion("A", at(0), at(24)).infusion("B", at(12), at(36)).infusion("C", at(-6), None)
    f.infusion("C", at(-72), at(-48))  # before the window
    # A: nuisance (5 s, unanswered), a repeat 20 min later, then one 100 min later
    f.alarm("A", at(1), code=OCCL, cleared_s=5)
    f.alarm("A", at(1 + 20 / 60), code=OCCL, cleared_s=60, acked_s=30)
    f.alarm("A", at(3), code=OCCL, cleared_s=120, acked_s=90)
    # acknowledged before it cleared: someone intervened, not a nuisance
    f.alarm("A", at(1 + 10 / 60), code=AIR, priority="medium", channel=2, cleared_s=8, acked_s=4)
    # cleared by itself in 3 s, acknowledged only later: a nuisance
    f.alarm("B", at(13), code=AIR, priority="medium", cleared_s=3, acked_s=600)
    f.alarm("B", at(34), code="near_empty", priority="low", cleared_s=12)
    f.alarm("C", at(29), code=OCCL, acked_s=45)
    f.alarm("C", at(29 + 25 / 60), code=OCCL, acked_s=15)
    f.alarm("C", at(30), code="battery_low", priority="medium", channel=None)
    f.alarm("C", at(-0.5), code=OCCL, acked_s=5)  # before the window
    return f


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        database = sqlite_db(tmp_path_factory.mktemp("alarms"))
        seed(Fleet()).commit(database)
        yield database
        database.dispose()
    else:
        with postgres_db() as database:
            seed(Fleet()).commit(database)
            yield database


def report(db: Database, **options: Any) -> dict[str, Any]:
    filters = {k: options.pop(k) for k in ("since", "until", "unit") if k in options}
    with db.read() as session:
        return alarm_report(session, parse_window(**{**WINDOW, **filters}), now=at(48), **options)


def test_rates_exposure_and_fatigue_indicators(db: Database) -> None:
    r = report(db)
    assert r["infusion_hours"] == pytest.approx(96.0)
    assert r["bed_days"] == 5
    t = r["total"]
    assert t["alarms"] == 9
    assert t["per_1000_infusion_hours"] == pytest.approx(9000 / 96)
    assert t["per_bed_day"] == pytest.approx(9 / 5)
    assert (t["high_priority"], t["high_priority_share"]) == (5, pytest.approx(5 / 9))
    assert (t["nuisance"], t["repeated"], t["acknowledged"]) == (2, 2, 6)
    # acknowledged after 4, 15, 30, 45, 90, 600 s
    assert t["time_to_acknowledge"] == {
        "count": 6,
        "median_s": pytest.approx(37.5),
        "p90_s": pytest.approx(345.0),
    }


def test_by_unit_code_and_priority(db: Database) -> None:
    r = report(db)
    units = {u["unit"]: u for u in r["by_unit"]}
    icu, ward = units["ICU-3"], units["Ward-5"]
    assert (icu["alarms"], icu["infusion_hours"], icu["bed_days"]) == (6, pytest.approx(48.0), 3)
    assert icu["per_1000_infusion_hours"] == pytest.approx(125.0)
    assert icu["per_bed_day"] == pytest.approx(2.0)
    assert (icu["nuisance"], icu["repeated"], icu["high_priority"]) == (2, 1, 3)
    assert icu["time_to_acknowledge"]["median_s"] == pytest.approx(60.0)
    assert icu["time_to_acknowledge"]["p90_s"] == pytest.approx(447.0)
    assert (ward["alarms"], ward["bed_days"], ward["repeated"]) == (3, 2, 1)
    assert ward["per_1000_infusion_hours"] == pytest.approx(62.5)
    assert ward["time_to_acknowledge"]["median_s"] == pytest.approx(30.0)
    codes = {(c["code"], c["priority"]): c for c in r["by_code"]}
    assert codes[(OCCL, "high")]["alarms"] == 5
    assert codes[(OCCL, "high")]["per_1000_infusion_hours"] == pytest.approx(5000 / 96)
    assert codes[(AIR, "medium")]["nuisance"] == 1
    assert r["by_code"][0]["code"] == OCCL  # most frequent first
    prio = {p["priority"]: p for p in r["by_priority"]}
    assert (prio["high"]["alarms"], prio["high"]["median_s"]) == (5, pytest.approx(37.5))
    assert (prio["medium"]["alarms"], prio["medium"]["median_s"]) == (3, pytest.approx(302.0))
    assert (prio["low"]["alarms"], prio["low"]["median_s"]) == (1, None)


def test_thresholds_and_filters(db: Database) -> None:
    assert report(db, nuisance_s=20)["total"]["nuisance"] == 3  # near_empty after 12 s
    assert report(db, repeat_min=120)["total"]["repeated"] == 3  # A's third, 100 min on
    ward = report(db, unit="Ward-5")
    assert (ward["total"]["alarms"], ward["infusion_hours"], ward["bed_days"]) == (
        3,
        pytest.approx(48.0),
        2,
    )
    day1 = report(db, until="2026-11-03")
    # A 24 h, B 12 h, C 24 h on 2 Nov; A's four alarms and B's air alarm
    assert day1["infusion_hours"] == pytest.approx(60.0)
    assert day1["total"]["alarms"] == 5
    for bad in ({"nuisance_s": 0}, {"repeat_min": 5000}):
        with pytest.raises(InputError) as err:
            report(db, **bad)
        assert err.value.field == next(iter(bad))


def test_open_window_counts_running_infusions_until_now(db: Database) -> None:
    with db.read() as session:
        r = alarm_report(session, parse_window(), now=at(48))
    # A 24 + B 24 + C (1 Nov 18:00 to now, 54 h) + C's earlier 24 h
    assert r["infusion_hours"] == pytest.approx(126.0)
    assert r["total"]["alarms"] == 10


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 10 * 86400), st.floats(1, 3 * 86400)),
        max_size=30,
    )
)
def test_bed_days_match_a_day_by_day_count(spans: list[tuple[int, float, float]]) -> None:
    """Vectorized bed-days equal the distinct (pump, UTC day) pairs counted one by one."""
    base = at(0).timestamp()
    pumps = np.asarray([f"P{p}" for p, _, _ in spans], dtype=object)
    start = np.asarray([base + s for _, s, _ in spans], dtype=float)
    stop = start + np.asarray([d for _, _, d in spans], dtype=float)
    expected = set()
    for p, s0, s1 in zip(pumps, start, stop, strict=True):
        day = int(s0 // 86400)
        while day * 86400 < s1:
            expected.add((p, day))
            day += 1
    assert _bed_days(pumps, start, stop) == len(expected)


def test_each_alarm_is_counted_once_across_groups(db: Database) -> None:
    r = report(db)
    assert sum(u["alarms"] for u in r["by_unit"]) == r["total"]["alarms"]
    assert sum(c["alarms"] for c in r["by_code"]) == r["total"]["alarms"]
    assert sum(p["alarms"] for p in r["by_priority"]) == r["total"]["alarms"]
