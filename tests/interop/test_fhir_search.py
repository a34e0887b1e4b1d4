"""Pure pieces of the FHIR face: date search bounds against the database window they imply,
resource ids, UCUM dose units, and the strict JSON reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from openinfusion.interop.fhir.api import _date_window
from openinfusion.interop.fhir.ids import (
    observation_id,
    parse_device_id,
    parse_metric_id,
    parse_observation_id,
)
from openinfusion.interop.fhir.jsonbody import parse_json
from openinfusion.interop.fhir.outcome import FhirError
from openinfusion.interop.fhir.search import dates
from openinfusion.interop.fhir.ucum import dose_quantity, from_ucum

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
PREFIXES = ["eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", ""]
moments = st.integers(min_value=-3 * 86400, max_value=3 * 86400).map(
    lambda s: T0 + timedelta(seconds=s)
)


def _text(at: datetime, precision: str) -> str:
    if precision == "day":
        return at.strftime("%Y-%m-%d")
    if precision == "minute":
        return at.strftime("%Y-%m-%dT%H:%MZ")
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@given(
    bounds=st.lists(
        st.tuples(st.sampled_from(PREFIXES), moments, st.sampled_from(["day", "minute", "s"])),
        min_size=1,
        max_size=3,
    ),
    at=moments,
)
def test_property_database_window_never_drops_an_admitted_time(
    bounds: list[tuple[str, datetime, str]], at: datetime
) -> None:
    """The SQL prefilter [since, until) keeps every time all the date bounds admit, so the
    exact check afterwards never misses a match."""
    params = QueryParams([("date", f"{p}{_text(m, prec)}") for p, m, prec in bounds])
    parsed = dates(params, "date")
    since, until = _date_window(parsed)
    if all(b.admits(at) for b in parsed):
        assert since is None or since <= at
        assert until is None or at < until


def test_date_precision_and_prefixes() -> None:
    (day,) = dates(QueryParams("date=2026-12-03"), "date")
    assert day.admits(T0) and not day.admits(T0 + timedelta(days=1))
    (ge,) = dates(QueryParams("date=ge2026-12-03T08:00Z"), "date")
    assert ge.admits(T0) and not ge.admits(T0 - timedelta(seconds=1))
    (gt,) = dates(QueryParams("date=gt2026-12-03T08:00Z"), "date")
    assert not gt.admits(T0 + timedelta(seconds=59)) and gt.admits(T0 + timedelta(minutes=1))
    (offset,) = dates(QueryParams("date=lt2026-12-03T09:00:00%2B01:00"), "date")
    assert not offset.admits(T0) and offset.admits(T0 - timedelta(seconds=1))
    for bad in ("yesterday", "2026-13-01", "2026-12-03T25:00Z", "ap2026", "2026-12-03T08:00"):
        with pytest.raises(FhirError):
            dates(QueryParams([("date", bad)]), "date")


@given(
    pump=st.from_regex(r"P-[0-9a-f]{12}", fullmatch=True),
    channel=st.integers(min_value=1, max_value=99),
    metric=st.sampled_from(["rate", "vol", "vtbi"]),
    seq=st.integers(min_value=0, max_value=10**18 - 1),
)
def test_property_ids_round_trip(pump: str, channel: int, metric: str, seq: int) -> None:
    text = observation_id(pump, channel, metric, seq)
    parsed = parse_observation_id(text)
    assert parsed is not None and (parsed.pump_id, parsed.channel, parsed.metric, parsed.seq) == (
        pump,
        channel,
        metric,
        seq,
    )
    assert str(parsed) == text and len(text) <= 64
    m = parse_metric_id(f"{pump}-ch{channel}-{metric}")
    assert m is not None and (m.pump_id, m.channel, m.metric) == (pump, channel, metric)
    d = parse_device_id(f"{pump}-ch{channel}")
    assert d is not None and (d.pump_id, d.channel) == (pump, channel)
    whole = parse_device_id(pump)
    assert whole is not None and whole.channel is None
    assert parse_device_id(f"{pump}/../x") is None


def test_ucum_dose_units() -> None:
    assert from_ucum("ug/kg/min") == ["mcg", "kg", "min"]
    assert from_ucum("[iU]/h") == ["units", "h"]
    assert from_ucum("[USP'U]/kg/h") == ["units", "kg", "h"]
    assert from_ucum("U/h") is None  # UCUM's enzyme unit is not a drug unit
    assert from_ucum("mL/s") is None
    q = dose_quantity("0.1 mcg/kg/min")
    assert q is not None and (q.value, q.ucum, q.is_rate) == (0.1, "ug/kg/min", True)
    q = dose_quantity("500 mg")
    assert q is not None and (q.ucum, q.is_rate) == ("mg", False)
    assert dose_quantity("5 furlongs/h") is None


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e309}', "overflows"),
        (b"\xff", "UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "deeper"),
        (b'{"a": [' + b"0," * 200 + b"0]}", "at most"),
    ],
)
def test_strict_json(raw: bytes, rule: str) -> None:
    with pytest.raises(FhirError) as caught:
        parse_json(raw)
    assert caught.value.status == 400 and rule in caught.value.rule


def test_strict_json_keeps_good_documents() -> None:
    assert parse_json(b'{"a": [1, -0.5, "x", null, true], "b": {"c": 1e308}}') == {
        "a": [1, -0.5, "x", None, True],
        "b": {"c": 1e308},
    }
