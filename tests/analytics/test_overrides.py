"""Soft alerts, overrides, hard blocks, reprograms and refinement suggestions on a seeded
fleet whose figures are known (SQLite and PostgreSQL), and the suggestion's safety rule as
a property: never at or beyond the hard limit."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.analytics.overrides import overrides_report
from openinfusion.analytics.refinement import suggest_limit
from openinfusion.analytics.window import ReportWindow, parse_window
from openinfusion.errors import InputError
from openinfusion.server.db import Database
from tests.analytics._safety_fleet import Fleet, alert, at, postgres_db, sqlite_db

MAP = "titrating to MAP goal"
ORDER = "per physician order"
SEDATION = "sedation target not reached"
WEANING = "weaning, dose confirmed with prescriber"
NOREPI = [round(1.1 + 0.1 * i, 1) for i in range(12)]  # 1.1 ... 2.2 mcg/kg/min
DEXMED = [round(0.11 + 0.01 * i, 2) for i in range(10)]  # 0.11 ... 0.20 mcg/kg/h


def seed(f: Fleet) -> Fleet:
    """Adult ICU limits as in the sample library: norepinephrine dose soft max 1, hard max 3
    mcg/kg/min; propofol soft max 50, hard max 80 mcg/kg/min; dexmedetomidine soft min 0.2
    with a hard min 0.1 mcg/kg/h (for the test)."""
    f.pump("P1", "ICU-3").pump("P2", "ICU-3").pump("P3", "PACU")
    for i, v in enumerate(NOREPI):  # 12 overrides, 8 + 4 reasons, on two pumps
        f.program(
            "P1" if i % 2 else "P2",
            at(i),
            verdict="soft",
            override_reason=MAP if i < 8 else ORDER,
            alerts=(alert(v, "soft_max", 1.0, 3.0),),
            dose=v,
        )
    for i in range(2):  # soft alerts not overridden, then reprogrammed within limits
        f.refused("P1", at(20 + i), outcome="cancelled", alerts=(alert(1.5, "soft_max", 1.0, 3.0),))
        f.program("P1", at(20.01 + i), after_alert="soft")
    for i in range(3):  # tenfold errors blocked; two reprogrammed, one abandoned
        f.refused("P2", at(30 + i), outcome="blocked", alerts=(alert(10.0, "hard_max", 3.0, 3.0),))
    for i in range(2):
        f.program("P2", at(30.01 + i), after_alert="hard")
    for i in range(20):
        f.program("P1", at(40 + i, days=1))
    for i, v in enumerate((55.0, 60.0, 70.0)):
        f.program(
            "P3",
            at(i + 1),
            drug="propofol",
            verdict="soft",
            override_reason=SEDATION,
            alerts=(alert(v, "soft_max", 50.0, 80.0),),
            dose=v,
        )
    for i, v in enumerate(DEXMED):
        f.program(
            "P3",
            at(i + 10),
            drug="dexmedetomidine",
            verdict="soft",
            override_reason=WEANING,
            alerts=(alert(v, "soft_min", 0.2, 0.1, unit="mcg/kg/h"),),
            dose=v,
        )
    for i in range(5):  # a basic infusion's advisory override is not a limit override
        f.basic("P3", at(i + 30))
    return f


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        database = sqlite_db(tmp_path_factory.mktemp("overrides"))
        seed(Fleet()).commit(database)
        yield database
        database.dispose()
    else:
        with postgres_db() as database:
            seed(Fleet()).commit(database)
            yield database


def report(db: Database, min_overrides: int = 10, **filters: Any) -> dict[str, Any]:
    with db.read() as session:
        return overrides_report(session, parse_window(**filters), min_overrides)


def tally(r: dict[str, Any]) -> tuple[int, ...]:
    keys = ("programs", "soft_alerts", "overridden", "cancelled", "hard_blocks", "reprogrammed")
    return tuple(r[k] for k in keys)


def test_totals_and_rates_are_exact(db: Database) -> None:
    t = report(db)["total"]
    assert tally(t) == (54, 27, 25, 2, 3, 4)
    assert t["override_rate"] == pytest.approx(25 / 27)
    assert t["alerts_per_100_programs"] == pytest.approx(100 * 30 / 59)
    assert t["reasons"] == [
        {"reason": WEANING, "count": 10},
        {"reason": MAP, "count": 8},
        {"reason": ORDER, "count": 4},
        {"reason": SEDATION, "count": 3},
    ]


def test_by_drug_and_by_unit(db: Database) -> None:
    r = report(db)
    drugs = {(d["care_area"], d["drug"]): d for d in r["by_drug"]}
    norepi = drugs[("Adult ICU", "norepinephrine")]
    assert tally(norepi) == (36, 14, 12, 2, 3, 4)
    assert norepi["override_rate"] == pytest.approx(12 / 14)
    assert norepi["alerts_per_100_programs"] == pytest.approx(100 * 17 / 41)
    assert [x["reason"] for x in norepi["reasons"]] == [MAP, ORDER]
    assert tally(drugs[("Adult ICU", "(basic infusion)")]) == (5, 0, 0, 0, 0, 0)
    assert r["by_drug"][0]["drug"] == "norepinephrine"  # most alerts first
    units = {u["unit"]: u for u in r["by_unit"]}
    assert tally(units["ICU-3"]) == (36, 14, 12, 2, 3, 4)
    assert tally(units["PACU"]) == (18, 13, 13, 0, 0, 0)


def test_refinement_candidates_with_evidence(db: Database) -> None:
    cands = report(db)["refinement"]
    assert [(c["drug"], c["bound"], c["overrides"]) for c in cands] == [
        ("norepinephrine", "soft_max", 12),
        ("dexmedetomidine", "soft_min", 10),
        ("propofol", "soft_max", 3),
    ]
    norepi, dexmed, propofol = cands
    # p90 of 1.1..2.2 (linear): 2.0 + 0.9 × 0.1 = 2.09, below the hard max 3
    assert norepi["evidence"]["p90"] == pytest.approx(2.09)
    assert norepi["evidence"]["median"] == pytest.approx(1.65)
    assert norepi["suggestion"]["suggested"] == 2.09
    assert (norepi["soft_limit"], norepi["hard_limit"]) == (1.0, 3.0)
    assert norepi["override_share"] == pytest.approx(12 / 36)
    assert norepi["evidence"]["reasons"][0] == {"reason": MAP, "count": 8}
    # p10 of 0.11..0.20: 0.11 + 0.9 × 0.01 = 0.119, above the hard min 0.1
    assert dexmed["suggestion"]["suggested"] == 0.119
    assert "lower the soft minimum" in dexmed["suggestion"]["reason"]
    assert propofol["suggestion"]["suggested"] is None
    assert propofol["suggestion"]["reason"] == "3 overrides, fewer than 10"


def test_min_overrides_and_filters(db: Database) -> None:
    strict = report(db, min_overrides=13)["refinement"][0]
    assert strict["suggestion"]["suggested"] is None
    assert strict["suggestion"]["reason"] == "12 overrides, fewer than 13"
    assert tally(report(db, unit="PACU")["total"]) == (18, 13, 13, 0, 0, 0)
    # from 4 Nov only the 20 programs within limits
    assert tally(report(db, since="2026-11-04")["total"]) == (20, 0, 0, 0, 0, 0)
    with pytest.raises(InputError) as err:
        report(db, min_overrides=0)
    assert err.value.field == "min_overrides"


# ---- the suggestion rule ---------------------------------------------------------------------


def test_suggestion_refuses_what_the_data_does_not_back() -> None:
    assert suggest_limit([1.5] * 9, "soft_max", 1.0, 3.0).suggested is None
    # overridden under an older, wider library: past today's hard maximum
    at_hard = suggest_limit([3.5] * 20, "soft_max", 1.0, 3.0)
    assert at_hard.suggested is None and "not below the hard maximum 3" in at_hard.reason
    rounded = suggest_limit([2.999] * 20, "soft_max", 1.0, 2.999)
    assert rounded.suggested == 2.99  # rounded down, toward the soft side
    below = suggest_limit([0.9] * 20, "soft_max", 1.0, 3.0)
    assert below.suggested is None and "not above the soft maximum" in below.reason
    assert suggest_limit([5.0] * 20, "hard_max", 1.0, 3.0).suggested is None
    assert suggest_limit([5.0] * 20, "soft_max", None, 30.0).suggested is None
    no_hard = suggest_limit([5.0] * 20, "soft_max", 1.0, None)
    assert no_hard.suggested == 5.0


limits = st.tuples(
    st.floats(0.001, 1e4, allow_nan=False, allow_infinity=False),
    st.floats(1.0001, 10.0, allow_nan=False),
)


@given(
    bounds=limits,
    spread=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=0, max_size=60),
    beyond=st.floats(0.0, 0.5),
    min_n=st.integers(1, 30),
    upper=st.booleans(),
)
def test_a_suggestion_never_reaches_the_hard_limit(
    bounds: tuple[float, float], spread: list[float], beyond: float, min_n: int, upper: bool
) -> None:
    """Whatever was overridden (even values at or past the hard limit, as a library changed
    under the fleet might show), a suggested soft limit lies strictly between the current
    soft limit and the hard limit, and only with at least ``min_n`` overrides."""
    soft, ratio = bounds
    if upper:
        hard = soft * ratio
        values = [soft + (hard - soft) * x * (1 + beyond) for x in spread]
        s = suggest_limit(values, "soft_max", soft, hard, min_n)
        if s.suggested is not None:
            assert soft < s.suggested < hard
    else:
        hard = soft / ratio
        values = [soft - (soft - hard) * x * (1 + beyond) for x in spread]
        s = suggest_limit(values, "soft_min", soft, hard, min_n)
        if s.suggested is not None:
            assert hard < s.suggested < soft
    if s.suggested is not None:
        assert len(values) >= min_n and math.isfinite(s.suggested)


def test_empty_database_reports_nothing(tmp_path: Any) -> None:
    database = sqlite_db(tmp_path)
    with database.read() as session:
        r = overrides_report(session, ReportWindow())
    assert tally(r["total"]) == (0, 0, 0, 0, 0, 0)
    assert r["total"]["override_rate"] is None and r["refinement"] == []
