"""Builders and readers of PCD-01, PCD-03, PCD-04, ACK and ADT^A40: round trips, errors,
and independent validation with hl7apy.

hl7apy 1.3.5 has v2.6 structures for ACK, ORU_R01 and RRG_O16, so those messages are
validated whole with STRICT validation. It has no ORU_R40 structure (PCD-04 is an IHE
addition to v2.6), so every segment of an ORU^R40 is validated on its own with STRICT
segment validation instead.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_message
from hl7apy.parser import parse_segment as hl7apy_segment
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.interop.hl7 import (
    HL7ParseError,
    build_ack,
    build_oru_r01,
    build_oru_r40,
    build_reject_for_raw,
    build_rrg_o16,
    parse_adt_a40,
    parse_alert_ack,
    parse_message,
    parse_rgv_o15,
    read_oru_r01,
)
from openinfusion.interop.hl7.parse import field_text, segments
from openinfusion.interop.records import PatientRef
from tests.interop._hl7_support import NOW, PATIENT, alarm, corpus_bytes, observation


def strict(text: str) -> str:
    """The message structure name hl7apy assigns under STRICT validation."""
    return str(hl7apy_message(text, validation_level=VALIDATION_LEVEL.STRICT).name)


# PCD-01 -------------------------------------------------------------------------------


def test_oru_r01_round_trip_keeps_every_fact() -> None:
    obs = observation()
    text = build_oru_r01(obs, control_id="OBS-1", now=NOW)
    report = read_oru_r01(parse_message(text))
    assert report.pump_serial == obs.pump_serial
    assert report.channel == 1
    assert report.observed_at == obs.observed_at
    assert report.infusing
    assert report.state == "running"
    assert report.drug == obs.drug
    assert report.dose == obs.dose
    assert report.dose_unit_ucum == "ug/kg/min"
    assert report.rate_ml_h == obs.rate_ml_h
    assert report.volume_infused_ml == obs.volume_infused_ml
    assert report.vtbi_remaining_ml == obs.vtbi_remaining_ml
    assert report.time_remaining_min == obs.time_remaining_min
    assert report.patient == PATIENT
    assert report.placer_order_id == "ORD-1001"


def test_oru_r01_layout_follows_the_pump_containment_tree() -> None:
    text = build_oru_r01(observation(channel=2, pump_kind="lvp"), control_id="OBS-2", now=NOW)
    msg = parse_message(text)
    msh = msg[0]
    assert field_text(msg, msh, 9, 3) == "ORU_R01"
    assert field_text(msg, msh, 21, 3) == "1.3.6.1.4.1.19376.1.6.1.1.1"
    rows = {field_text(msg, o, 4): field_text(msg, o, 3, 2) for o in segments(msg, "OBX")}
    assert rows["1.0.0.0"] == "MDC_DEV_PUMP_INFUS_LVP_MDS"
    assert rows["1.2.0.0"] == "MDC_DEV_PUMP_INFUS_LVP_VMD"
    assert rows["1.2.2.3"] == "MDC_FLOW_FLUID_PUMP"
    assert rows["1.2.2.6"] == "MDC_VOL_FLUID_TBI_REMAIN"
    rate = next(o for o in segments(msg, "OBX") if field_text(msg, o, 4) == "1.2.2.3")
    assert field_text(msg, rate, 6, 1) == "265266"
    assert field_text(msg, rate, 6, 2) == "MDC_DIM_MILLI_L_PER_HR"
    assert field_text(msg, rate, 6, 4) == "mL/h"
    assert field_text(msg, rate, 17, 1) == "MSET"
    mds = segments(msg, "OBX")[0]
    assert field_text(msg, mds, 18, 1) == "OI-SYR-0007"
    assert field_text(msg, mds, 18, 4) == "EUI-64"
    assert len(field_text(msg, mds, 18, 3)) == 16
    assert field_text(msg, segments(msg, "OBR")[0], 2) == "ORD-1001"


def test_oru_r01_leaves_out_what_the_pump_did_not_report() -> None:
    obs = observation(
        state="idle",
        drug=None,
        dose=None,
        dose_unit=None,
        rate_ml_h=None,
        volume_infused_ml=None,
        vtbi_remaining_ml=None,
        time_remaining_min=None,
        patient=None,
        placer_order_id=None,
    )
    msg = parse_message(build_oru_r01(obs, control_id="OBS-3", now=NOW))
    assert not segments(msg, "PID")
    report = read_oru_r01(msg)
    assert not report.infusing
    assert (report.rate_ml_h, report.dose, report.drug, report.patient) == (None, None, None, None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate_ml_h": math.nan}, "rate_ml_h"),
        ({"volume_infused_ml": -1.0}, "volume_infused_ml"),
        ({"dose_unit": "furlongs/fortnight"}, "dose_unit"),
        ({"dose_unit": None}, "dose_unit"),
        ({"channel": 0}, "channel"),
        ({"pump_serial": ""}, "pump_serial"),
    ],
)
def test_oru_r01_refuses_records_it_cannot_report_faithfully(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        build_oru_r01(observation(**change), control_id="X", now=NOW)


def test_oru_r01_is_valid_v26_for_hl7apy() -> None:
    assert strict(build_oru_r01(observation(), control_id="OBS-4", now=NOW)) == "ORU_R01"


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.none() | finite,
    volume=st.none() | finite,
    remaining=st.none() | finite,
    drug=st.none() | words,
    state=st.sampled_from(["running", "paused", "stopped", "alarm", "completed", "idle"]),
    channel=st.integers(1, 4),
    serial=words,
    family=st.text(max_size=20),
)
def test_oru_r01_round_trip_property(
    rate: float | None,
    volume: float | None,
    remaining: float | None,
    drug: str | None,
    state: str,
    channel: int,
    serial: str,
    family: str,
) -> None:
    obs = observation(
        rate_ml_h=rate,
        volume_infused_ml=volume,
        vtbi_remaining_ml=remaining,
        drug=drug,
        state=state,
        channel=channel,
        pump_serial=serial,
        patient=replace(PATIENT, family_name=family),
    )
    report = read_oru_r01(parse_message(build_oru_r01(obs, control_id="P", now=NOW)))
    assert (report.rate_ml_h, report.volume_infused_ml, report.vtbi_remaining_ml) == (
        rate,
        volume,
        remaining,
    )
    assert (report.drug, report.state, report.channel, report.pump_serial) == (
        drug,
        state,
        channel,
        serial,
    )
    assert report.patient is not None and report.patient.family_name == family


# PCD-04 -------------------------------------------------------------------------------


def _facets(text: str) -> dict[str, str]:
    msg = parse_message(text)
    return {field_text(msg, o, 3, 2): field_text(msg, o, 5, 1) for o in segments(msg, "OBX")}


@pytest.mark.parametrize(
    ("state", "phase", "alarm_state", "inactivation"),
    [
        ("active", "start", "active", "enabled"),
        ("acknowledged", "continue", "active", "acknowledged"),
        ("cleared", "end", "inactive", "enabled"),
    ],
)
def test_oru_r40_phase_state_and_inactivation(
    state: str, phase: str, alarm_state: str, inactivation: str
) -> None:
    facets = _facets(build_oru_r40(alarm(state=state), control_id="AL-1", now=NOW))
    assert facets["MDC_ATTR_EVENT_PHASE"] == phase
    assert facets["MDC_ATTR_ALARM_STATE"] == alarm_state
    assert facets["MDC_ATTR_ALARM_INACTIVATION_STATE"] == inactivation
    assert facets["MDC_EVT_ALARM"] == "196940"  # MDC_EVT_FLUID_LINE_OCCL


def test_oru_r40_identifies_alert_priority_source_and_pump() -> None:
    text = build_oru_r40(alarm(), control_id="AL-2", now=NOW, update_counter=3)
    msg = parse_message(text)
    obr = segments(msg, "OBR")[0]
    assert field_text(msg, obr, 2) == "ORD-1002"  # the infusion order
    assert field_text(msg, obr, 3) == "OI-LVP-0003-A91.3"  # this indication
    assert field_text(msg, obr, 29, 2, sub=1) == "OI-LVP-0003-A91"  # the alert
    ended = parse_message(
        build_oru_r40(alarm(state="cleared"), control_id="AL-2e", now=NOW, update_counter=4)
    )
    end_obr = segments(ended, "OBR")[0]
    assert field_text(ended, end_obr, 29, 2, sub=1) == "OI-LVP-0003-A91"
    assert field_text(ended, end_obr, 3) == "OI-LVP-0003-A91.4"
    first = segments(msg, "OBX")[0]
    assert field_text(msg, first, 4) == "1.2.0.0.1"
    assert field_text(msg, first, 8, 1, rep=1) == "PH"
    assert field_text(msg, first, 8, 1, rep=2) == "ST"
    assert field_text(msg, first, 5, 9) == "Downstream occlusion | check line"
    assert field_text(msg, first, 18, 1) == "OI-LVP-0003"
    assert field_text(msg, first, 18, 2) == "OI-LVP 2ch"  # model in EI-2 (TF-2 B.8)
    assert _facets(text)["MDC_ATTR_ALERT_SOURCE"] == "70050"  # the channel's LVP VMD
    assert field_text(msg, msg[0], 21, 1) == "IHE_PCD_ACM_001"


def test_oru_r40_without_an_mdc_event_uses_the_local_code_and_text() -> None:
    msg = parse_message(
        build_oru_r40(
            alarm(code="door_open", priority="medium", channel=None, patient=None),
            control_id="A",
            now=NOW,
        )
    )
    assert field_text(msg, segments(msg, "PID")[0], 31) == "Y"  # PID required, identity unknown
    first = segments(msg, "OBX")[0]
    assert field_text(msg, first, 5, 1) == "door_open"
    assert field_text(msg, first, 5, 3) == "99OI"
    assert field_text(msg, first, 8, 1) == "PM"
    assert field_text(msg, first, 4) == "1.0.0.0.1"


@pytest.mark.parametrize("patient", [PATIENT, None])
def test_oru_r40_segments_are_valid_v26_for_hl7apy(patient: PatientRef | None) -> None:
    text = build_oru_r40(alarm(patient=patient), control_id="AL-3", now=NOW)
    for line in filter(None, text.split("\r")):
        if line.startswith("MSH"):
            continue  # MSH-9 ORU^R40 is outside hl7apy's v2.6 tables; checked below
        hl7apy_segment(line, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
    msh = text.split("\r")[0].replace("ORU^R40^ORU_R40", "ORU^R01^ORU_R01")
    hl7apy_segment(msh, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)


def test_alert_manager_reply_tells_accepted_from_errors() -> None:
    sent = parse_message(build_oru_r40(alarm(), control_id="AL-4", now=NOW))
    ok = parse_alert_ack(parse_message(build_ack(sent, "AA", now=NOW, control_id="AM-1")))
    assert ok.accepted and ok.acknowledged_control_id == "AL-4"
    bad = parse_alert_ack(
        parse_message(
            build_ack(
                sent,
                "AE",
                now=NOW,
                control_id="AM-2",
                errors=[HL7ParseError("OBX-5", "", "alert type unknown", 103)],
            )
        )
    )
    assert not bad.accepted
    assert bad.code == "AE"
    assert bad.errors[0].code == "103"
    assert bad.errors[0].location == "OBX^1^5"


def test_alert_ack_refuses_other_messages() -> None:
    with pytest.raises(HL7ParseError) as info:
        parse_alert_ack(parse_message(build_oru_r40(alarm(), control_id="X", now=NOW)))
    assert info.value.field == "MSH-9"


# ACK ----------------------------------------------------------------------------------


def test_ack_names_every_error_and_is_valid_v26() -> None:
    msg = parse_message(corpus_bytes("pcd03_rgv_o15_dopamine_tf2_e23.hl7"))
    errors = [
        HL7ParseError("RXG-4", "1234", "drug not in the library", 207),
        HL7ParseError("PID-3", "", "patient identifier is required", 101),
    ]
    text = build_ack(msg, "AE", errors=errors, now=NOW, control_id="ACK-1")
    assert strict(text) == "ACK"
    reply = parse_message(text)
    assert field_text(reply, reply[0], 9) == "ACK"
    assert field_text(reply, reply[0], 9, 2) == "O15"
    # MSH-5 answers the sender's whole HD (namespace, EUI-64, type), as in TF-2 E.2.3
    assert [field_text(reply, reply[0], 5, i) for i in (1, 2, 3)] == [
        "IOPVENDOR",
        "1234560000000001",
        "EUI-64",
    ]
    assert field_text(reply, segments(reply, "MSA")[0], 2) == "1"
    errs = segments(reply, "ERR")
    assert [field_text(reply, e, 3, 1) for e in errs] == ["207", "101"]
    assert field_text(reply, errs[0], 2, 1) == "RXG"
    assert field_text(reply, errs[0], 2, 3) == "4"
    assert "drug not in the library" in field_text(reply, errs[0], 8)


def test_ack_accepts_issue_objects_with_hl7_code() -> None:
    class Issue:
        field = "RXG-15"
        value = "900"
        rule = "rate above the hard limit"
        hl7_code = 207

    msg = parse_message(corpus_bytes("pcd03_rgv_o15_saline_tf2_e23.hl7"))
    reply = parse_message(build_ack(msg, "AR", errors=[Issue()], now=NOW, control_id="A"))
    assert field_text(reply, segments(reply, "ERR")[0], 3, 1) == "207"


def test_reject_for_unreadable_input_echoes_only_a_clean_control_id() -> None:
    raw = b"MSH|^~\\&|EHR||||||RGV^O15|CID-77|P|2.6\rPID|1|\x00"
    with pytest.raises(HL7ParseError) as info:
        parse_message(raw)
    text = build_reject_for_raw(raw, info.value, now=NOW, control_id="REJ-1")
    reply = parse_message(text)
    assert field_text(reply, segments(reply, "MSA")[0], 1) == "AR"
    assert field_text(reply, segments(reply, "MSA")[0], 2) == "CID-77"
    assert field_text(reply, reply[0], 9, 2) == "O15"
    assert strict(text) == "ACK"
    garbage = build_reject_for_raw(b"\x0b\xff|||", info.value, now=NOW, control_id="REJ-2")
    assert field_text(parse_message(garbage), segments(parse_message(garbage), "MSA")[0], 2) == ""


# PCD-03 -------------------------------------------------------------------------------

RGV = (
    "MSH|^~\\&|EHR|HOSP|OPENINFUSION|ICU|20260301083000+0000||RGV^O15^RGV_O15|ORD-MSG-1|P|2.6"
    "|||AL|AL|||||IHE_PCD_PIV_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.3.1^ISO\r"
    "PID|||MRN-0042^^^HOSP^MR||Nightingale^Florence^^^^^L||19600512|F\r"
    "ORC|NW|ORD-2001||||||||||DR-7^House^Greg\r"
    "RXG|1|||NOR4^Noradrenaline|50||mL^mL^UCUM||||||||0.1|ug/kg/min^ug/kg/min^UCUM|4|mg^mg^UCUM|||||50|mL^mL^UCUM\r"
    "RXR|IV\r"
    "OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.2.0.0|||||||X|||||||OI-SYR-0007\r"
    "OBX|2|NM|68063^MDC_ATTR_PT_WEIGHT^MDC||72.5|kg^kg^UCUM\r"
)


def test_rgv_o15_maps_every_order_field() -> None:
    order = parse_rgv_o15(parse_message(RGV))
    assert order.source == "hl7"
    assert order.placer_order_id == "ORD-2001"
    assert order.patient_mrn == "MRN-0042"
    assert order.pump_serial == "OI-SYR-0007"
    assert order.channel == 2
    assert (order.drug_code, order.drug_name) == ("NOR4", "Noradrenaline")
    assert order.concentration == "4 mg/50 mL"
    assert order.dose == "0.1 mcg/kg/min"
    assert order.rate_ml_h is None
    assert order.vtbi_ml == 50.0
    assert order.patient_weight_kg == 72.5
    assert order.ordered_by == "DR-7"
    assert order.message_control_id == "ORD-MSG-1"
    assert (order.sending_application, order.sending_facility) == ("EHR", "HOSP")


@pytest.mark.parametrize(
    ("old", "new", "field", "code"),
    [
        ("ORC|NW|ORD-2001|", "ORC|NW||", "ORC-2", 101),
        ("PID|||MRN-0042^^^HOSP^MR|", "PID||||", "PID-3", 101),
        ("|NOR4^Noradrenaline|", "||", "RXG-4", 101),
        ("|0.1|ug/kg/min^ug/kg/min^UCUM|", "|0.1||", "RXG-16", 101),
        ("|0.1|", "|0,1|", "RXG-15", 102),
        ("|0.1|ug/kg/min^ug/kg/min^UCUM|", "|2|mL/min^mL/min^UCUM|", "RXG-16", 102),
        ("|50||mL^mL^UCUM|", "|50||L^L^UCUM|", "RXG-7", 102),
        ("|72.5|kg^kg^UCUM", "|160|[lb_av]^[lb_av]^UCUM", "OBX-6", 102),
        ("|72.5|kg^kg^UCUM", "|72500|263872^MDC_DIM_X_G^MDC^lb^lb^UCUM", "OBX-6", 102),
        ("|72.5|", "|heavy|", "OBX-5", 102),
        ("|||||||OI-SYR-0007\r", "\r", "OBX-18", 101),
        ("|4|mg^mg^UCUM|", "|||", "RXG-17", 101),
        ("RGV^O15^RGV_O15", "RGV^O01^RGV_O15", "MSH-9", 201),
        ("RGV^O15^RGV_O15", "ORM^O01^ORM_O01", "MSH-9", 200),
        ("RXR|IV\r", "RXR|IV\rORC|NW|ORD-2002\r", "ORC", 100),
        (
            "OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.2.0.0|||||||X|||||||OI-SYR-0007\r",
            "",
            "OBX",
            100,
        ),
        ("|50||mL^mL^UCUM|", "|-50||mL^mL^UCUM|", "RXG-5", 102),
    ],
)
def test_rgv_o15_errors_name_the_hl7_field(old: str, new: str, field: str, code: int) -> None:
    assert old in RGV
    with pytest.raises(HL7ParseError) as info:
        parse_rgv_o15(parse_message(RGV.replace(old, new, 1)))
    assert (info.value.field, info.value.code) == (field, code), str(info.value)


def test_rgv_o15_weight_in_grams_is_converted_exactly() -> None:
    grams = RGV.replace("|72.5|kg^kg^UCUM", "|72500|263872^MDC_DIM_X_G^MDC")
    assert parse_rgv_o15(parse_message(grams)).patient_weight_kg == 72.5


def test_rgv_o15_rate_order_and_disagreeing_obx() -> None:
    rate = RGV.replace("|0.1|ug/kg/min^ug/kg/min^UCUM|", "|12.5|mL/h^mL/h^UCUM|")
    assert parse_rgv_o15(parse_message(rate)).rate_ml_h == 12.5
    clash = rate + "OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||125|mL/h^mL/h^UCUM\r"
    with pytest.raises(HL7ParseError) as info:
        parse_rgv_o15(parse_message(clash))
    assert info.value.field == "OBX-5"


def test_rrg_o16_reject_names_the_field_and_echoes_the_order() -> None:
    msg = parse_message(RGV)
    issue = HL7ParseError("RXG-4", "NOR4", "no drug library entry for this give code", 207)
    text = build_rrg_o16(msg, accepted=False, errors=[issue], now=NOW, control_id="RRG-1")
    assert strict(text) == "RRG_O16"
    reply = parse_message(text)
    assert field_text(reply, segments(reply, "MSA")[0], 1) == "AR"
    assert field_text(reply, segments(reply, "MSA")[0], 2) == "ORD-MSG-1"
    assert field_text(reply, segments(reply, "ORC")[0], 1) == "UA"
    assert field_text(reply, segments(reply, "ORC")[0], 2) == "ORD-2001"
    assert not segments(reply, "RXG")  # usage X in TF-2 table 3.3.5-1
    assert field_text(reply, segments(reply, "ERR")[0], 2, 1) == "RXG"
    accepted = parse_message(build_rrg_o16(msg, accepted=True, now=NOW, control_id="RRG-2"))
    assert field_text(accepted, segments(accepted, "MSA")[0], 1) == "AA"
    assert field_text(accepted, segments(accepted, "ORC")[0], 1) == "OK"
    content = parse_message(
        build_rrg_o16(
            msg,
            accepted=False,
            errors=[HL7ParseError("RXG-15", "x", "bad", 102)],
            now=NOW,
            control_id="RRG-3",
        )
    )
    assert field_text(content, segments(content, "MSA")[0], 1) == "AE"


def test_rrg_o16_echo_is_re_encoded_from_other_delimiters() -> None:
    odd = RGV.replace("|", "#").replace("^", "*").replace("Nightingale", "Night|ingale")
    msg = parse_message(odd)
    reply = parse_message(build_rrg_o16(msg, accepted=True, now=NOW, control_id="R"))
    assert field_text(reply, segments(reply, "PID")[0], 5, 1) == "Night|ingale"
    assert field_text(reply, segments(reply, "ORC")[0], 12, 2) == "House"


def test_rrg_o16_refusal_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="errors"):
        build_rrg_o16(parse_message(RGV), accepted=False, now=NOW, control_id="R")


# ADT^A40 ------------------------------------------------------------------------------

A40 = (
    "MSH|^~\\&|EHR|HOSP|OPENINFUSION||20260301090000+0000||ADT^A40^ADT_A39|MRG-1|P|2.6\r"
    "EVN|A40|20260301085959+0000\r"
    "PID|||MRN-NEW^^^HOSP^MR||Nightingale^Florence\r"
    "MRG|MRN-OLD^^^HOSP^MR\r"
)


def test_adt_a40_names_surviving_and_prior() -> None:
    merge = parse_adt_a40(parse_message(A40))
    assert (merge.surviving_mrn, merge.prior_mrn, merge.control_id) == (
        "MRN-NEW",
        "MRN-OLD",
        "MRG-1",
    )
    assert merge.event_time == datetime(2026, 3, 1, 8, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("MRG|MRN-OLD^^^HOSP^MR\r", "MRG|\r", "MRG-1"),
        ("MRG|MRN-OLD^^^HOSP^MR\r", "", "MRG"),
        ("PID|||MRN-NEW^^^HOSP^MR|", "PID||||", "PID-3"),
        ("MRN-OLD", "MRN-NEW", "MRG-1"),
        ("ADT^A40", "ADT^A08", "MSH-9"),
        ("|20260301085959+0000", "|20260301085959", "EVN-2"),
    ],
)
def test_adt_a40_errors_name_the_field(old: str, new: str, field: str) -> None:
    with pytest.raises(HL7ParseError) as info:
        parse_adt_a40(parse_message(A40.replace(old, new, 1)))
    assert info.value.field == field


def test_patient_without_names_round_trips() -> None:
    obs = observation(patient=PatientRef("M-1"))
    report = read_oru_r01(parse_message(build_oru_r01(obs, control_id="C", now=NOW)))
    assert report.patient == PatientRef("M-1")


alarm_codes = st.sampled_from(
    [
        "occlusion_downstream",
        "air_in_line",
        "door_open",
        "syringe_disengaged",
        "battery_low",
        "vtbi_complete",
        "pca_paused",
        "not_a_registered_code",
    ]
)


@settings(max_examples=120, deadline=None)
@given(
    code=alarm_codes,
    priority=st.sampled_from(["high", "medium", "low"]),
    channel=st.none() | st.integers(1, 4),
    message=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60),
    counter=st.integers(0, 50),
)
def test_every_alarm_state_reads_back_consistently(
    code: str, priority: str, channel: int | None, message: str, counter: int
) -> None:
    """One alert, reported active, acknowledged and cleared: the same OBR-29 alert id, a
    distinct OBR-3 per indication, phase/state/inactivation as ACM defines them, the
    priority flag, and the pump's text intact."""
    ids = set()
    indications = set()
    for step, (state, phase, alarm_state) in enumerate(
        (
            ("active", "start" if counter == 0 else "continue", "active"),
            ("acknowledged", "continue", "active"),
            ("cleared", "end", "inactive"),
        )
    ):
        report = alarm(code=code, priority=priority, channel=channel, message=message, state=state)
        msg = parse_message(
            build_oru_r40(report, control_id="P", now=NOW, update_counter=counter + step)
        )
        obr = segments(msg, "OBR")[0]
        ids.add(field_text(msg, obr, 29, 2, sub=1))
        indications.add(field_text(msg, obr, 3))
        facets = {field_text(msg, o, 3, 2): o for o in segments(msg, "OBX")}
        assert field_text(msg, facets["MDC_ATTR_EVENT_PHASE"], 5) == phase
        assert field_text(msg, facets["MDC_ATTR_ALARM_STATE"], 5) == alarm_state
        first = facets["MDC_EVT_ALARM"]
        assert (
            field_text(msg, first, 8, rep=1)
            == {"high": "PH", "medium": "PM", "low": "PL"}[priority]
        )
        assert field_text(msg, first, 5, 9) == message
        assert field_text(msg, first, 4).startswith(f"1.{channel or 0}.0.0.")
    assert len(ids) == 1
    assert len(indications) == 3


@settings(max_examples=25, deadline=None)
@given(
    rate=st.none() | finite,
    drug=st.none() | words,
    family=st.text(max_size=20),
)
def test_generated_oru_r01_stays_valid_for_hl7apy(
    rate: float | None, drug: str | None, family: str
) -> None:
    obs = observation(rate_ml_h=rate, drug=drug, patient=replace(PATIENT, family_name=family))
    assert strict(build_oru_r01(obs, control_id="V", now=NOW)) == "ORU_R01"


def test_birth_date_is_the_day_written_with_or_without_a_zone() -> None:
    from datetime import date

    for pid7 in ("19600512", "196005120000", "19600512235959", "19600512235959-1100"):
        text = A40.replace(
            "PID|||MRN-NEW^^^HOSP^MR||Nightingale^Florence", f"PID|||M^^^H^MR||N^F||{pid7}"
        )
        order_patient = read_oru_patient(text)
        assert order_patient.birth_date == date(1960, 5, 12), pid7
    with pytest.raises(HL7ParseError) as info:
        read_oru_patient(
            A40.replace("PID|||MRN-NEW^^^HOSP^MR||Nightingale^Florence", "PID|||M||N||19600231")
        )
    assert info.value.field == "PID-7"


def read_oru_patient(text: str) -> PatientRef:
    from openinfusion.interop.hl7._patient import read_patient

    patient = read_patient(parse_message(text))
    assert patient is not None
    return patient
