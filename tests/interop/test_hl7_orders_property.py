"""PCD-03 orders as properties: what an RGV^O15 says reaches the OrderRequest unchanged,
and no order leaves the reader with a number that is not finite and >= 0."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.interop.hl7 import HL7ParseError, parse_message, parse_rgv_o15
from openinfusion.interop.hl7._build import number
from openinfusion.interop.hl7.parse import escape

ident = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Zl", "Zp", "Cc")),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s)
amount = st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False).map(float)
DOSE_UNITS = {  # UCUM in the message -> the drug library's spelling
    "ug/kg/min": "mcg/kg/min",
    "mg/h": "mg/h",
    "[iU]/h": "units/h",
    "ug/h": "mcg/h",
    "mg/kg/h": "mg/kg/h",
    "g": "g",
}


@st.composite
def orders(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    facts: dict[str, object] = {
        "placer": draw(ident),
        "mrn": draw(ident),
        "drug_code": draw(ident),
        "drug_name": draw(ident),
        "serial": draw(ident),
        "channel": draw(st.none() | st.integers(1, 8)),
        "vtbi": draw(st.none() | amount),
        "weight": draw(st.none() | amount),
    }
    by_rate = draw(st.booleans())
    rate = draw(amount)
    unit = draw(st.sampled_from(sorted(DOSE_UNITS)))
    strength = draw(st.none() | amount)
    volume = draw(amount) if strength is not None and draw(st.booleans()) else None
    rxg = [
        "RXG",
        "1",
        "",
        "",
        f"{escape(str(facts['drug_code']))}^{escape(str(facts['drug_name']))}",
    ]
    rxg += [
        number(facts["vtbi"]) if facts["vtbi"] is not None else "",
        "",
        "mL^mL^UCUM" if facts["vtbi"] is not None else "",
    ]
    rxg += [""] * 7
    rxg += [number(rate), "mL/h^mL/h^UCUM" if by_rate else f"{unit}^{unit}^UCUM"]
    if strength is not None:
        rxg += [number(strength), "mg^mg^UCUM"]
        if volume is not None:
            rxg += ["", "", "", "", number(volume), "263762^MDC_DIM_MILLI_L^MDC"]
    sub_id = f"1.{facts['channel']}.0.0" if facts["channel"] else ""
    lines = [
        "MSH|^~\\&|EHR|HOSP|OPENINFUSION||20260301083000+0000||RGV^O15^RGV_O15|C-1|P|2.6",
        f"PID|||{escape(str(facts['mrn']))}^^^HOSP^MR",
        f"ORC|NW|{escape(str(facts['placer']))}",
        "|".join(rxg),
        "RXR|^IV^HL70162",
        f"OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|{sub_id}|||||||X|||||||{escape(str(facts['serial']))}",
    ]
    if facts["weight"] is not None:
        lines.append(f"OBX|2|NM|68063^MDC_ATTR_PT_WEIGHT^MDC||{number(facts['weight'])}|kg^kg^UCUM")
    facts["rate_ml_h"] = rate if by_rate else None
    facts["dose"] = None if by_rate else f"{number(rate)} {DOSE_UNITS[unit]}"
    facts["concentration"] = (
        None
        if strength is None
        else f"{number(strength)} mg" + (f"/{number(volume)} mL" if volume is not None else "")
    )
    return "\r".join(lines) + "\r", facts


@settings(max_examples=200, deadline=None)
@given(orders())
def test_every_order_fact_reaches_the_order_request(case: tuple[str, dict[str, object]]) -> None:
    text, facts = case
    order = parse_rgv_o15(parse_message(text))
    assert order.placer_order_id == facts["placer"]
    assert order.patient_mrn == facts["mrn"]
    assert (order.drug_code, order.drug_name) == (facts["drug_code"], facts["drug_name"])
    assert order.pump_serial == facts["serial"]
    assert order.channel == facts["channel"]
    assert order.vtbi_ml == facts["vtbi"]
    assert order.patient_weight_kg == facts["weight"]
    assert order.rate_ml_h == facts["rate_ml_h"]
    assert order.dose == facts["dose"]
    assert order.concentration == facts["concentration"]


@st.composite
def damaged_orders(draw: st.DrawFn) -> str:
    text, _ = draw(orders())
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(chars) - 1))
        chars[at] = draw(st.sampled_from([*list("-0.9e|^~&\\ xN+"), "inf", "nan", "1e999", "-1"]))
    return "".join(chars)


@settings(max_examples=300, deadline=None)
@given(damaged_orders())
def test_no_order_carries_a_number_that_is_not_finite_and_non_negative(text: str) -> None:
    """Safety invariant: a damaged order is refused, or every number it carries is finite
    and >= 0 (never NaN, infinity or negative, never silently clamped)."""
    try:
        order = parse_rgv_o15(parse_message(text))
    except HL7ParseError:
        return
    for value in (order.rate_ml_h, order.vtbi_ml, order.patient_weight_kg):
        assert value is None or (math.isfinite(value) and value >= 0)
    for text_value in (order.dose, order.concentration):
        if text_value is not None:
            for token in text_value.replace("/", " ").split():
                if token[0].isdigit():
                    assert math.isfinite(float(token)) and float(token) >= 0
