"""The IHE PCD Technical Framework's own sample messages (corpus/SOURCES.md): read,
mapped and explained."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_message

from openinfusion.interop.hl7 import (
    explain,
    message_type,
    parse_alert_ack,
    parse_message,
    parse_rgv_o15,
    render_text,
)
from openinfusion.interop.hl7.parse import field_text, segments
from tests.interop._hl7_support import CORPUS, corpus_bytes

SAMPLES = sorted(p.name for p in CORPUS.glob("*.hl7"))


def test_the_corpus_holds_the_tf_samples() -> None:
    assert {
        "pcd01_oru_r01_monitor_tf2_e11.hl7",
        "pcd03_rgv_o15_dopamine_tf2_e23.hl7",
        "pcd04_oru_r40_occlusion_start_tf2_e32.hl7",
        "pcd10_oru_r42_pump_delivery_start_ipec.hl7",
    } <= set(SAMPLES)
    sources = (CORPUS / "SOURCES.md").read_text()
    for name in SAMPLES:
        assert name in sources, f"{name} has no cited source"


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_reads_back_byte_for_byte_and_is_explained(name: str) -> None:
    raw = corpus_bytes(name)
    msg = parse_message(raw)
    assert str(msg).encode("latin-1") == raw
    fields = explain(msg)
    assert fields[0].location == "MSH-1"
    unnamed = [f.location for f in fields if not f.name]
    assert not unnamed, unnamed
    text = render_text(msg)
    assert "Message Header" in text and "Message Type" in text


def test_pcd03_dopamine_order_maps_to_the_storyboard() -> None:
    """TF-2 E.2.1 storyboard: patient 98765, dopamine 400 mg/250 mL, 10 mcg/kg/min,
    VTBI 250 mL, 85.0 kg, pump A0001, order 12345."""
    order = parse_rgv_o15(parse_message(corpus_bytes("pcd03_rgv_o15_dopamine_tf2_e23.hl7")))
    assert order.patient_mrn == "98765"
    assert order.placer_order_id == "12345"
    assert (order.drug_code, order.drug_name) == ("1234", "Dopamine")
    assert order.concentration == "400 mg/250 mL"
    assert order.dose == "10 mcg/kg/min"
    assert order.vtbi_ml == 250.0
    assert order.patient_weight_kg == 85.0
    assert order.pump_serial == "A0001"
    assert order.rate_ml_h is None


def test_pcd03_saline_order_maps_to_the_storyboard() -> None:
    order = parse_rgv_o15(parse_message(corpus_bytes("pcd03_rgv_o15_saline_tf2_e23.hl7")))
    assert (order.drug_name, order.vtbi_ml, order.rate_ml_h) == ("Normal Saline", 500.0, 13.3)
    assert order.dose is None and order.concentration is None


def test_pcd03_replies_read_as_accepted_and_rejected() -> None:
    accept = parse_alert_ack(parse_message(corpus_bytes("pcd03_ack_o15_accept_tf2_e23.hl7")))
    assert accept.accepted and accept.code == "CA"
    msg = parse_message(corpus_bytes("pcd03_rrg_o16_reject_tf2_e23.hl7"))
    err = segments(msg, "ERR")[0]
    assert field_text(msg, err, 3, 1) == "207"
    assert field_text(msg, err, 5, 2) == "Unable to match medication to drug library"


def test_pcd04_occlusion_start_and_end_are_explained_with_mdc_terms() -> None:
    start = parse_message(corpus_bytes("pcd04_oru_r40_occlusion_start_tf2_e32.hl7"))
    assert message_type(start) == ("ORU", "R40", "ORU_R40")
    meanings = [f.meaning for f in explain(start) if f.meaning]
    assert any("MDC_EVT_FLUID_LINE_OCCL (196940)" in m for m in meanings)
    assert any("MDC_DEV_PUMP_INFUS_MDS (69985)" in m for m in meanings)
    values = {field_text(start, o, 3, 2): field_text(start, o, 5) for o in segments(start, "OBX")}
    assert values["MDC_ATTR_EVENT_PHASE"] == "start"
    end = parse_message(corpus_bytes("pcd04_oru_r40_occlusion_end_tf2_e32.hl7"))
    values = {field_text(end, o, 3, 2): field_text(end, o, 5) for o in segments(end, "OBX")}
    assert (values["MDC_ATTR_EVENT_PHASE"], values["MDC_ATTR_ALARM_STATE"]) == ("end", "inactive")


def test_ipec_pump_sample_uses_the_codes_of_our_nomenclature() -> None:
    """Every non-pending MDC code in the TF's pump sample has the same reference ID here."""
    from openinfusion.interop.hl7 import nomenclature as mdc

    msg = parse_message(corpus_bytes("pcd10_oru_r42_pump_delivery_start_ipec.hl7"))
    checked = 0
    for obx in segments(msg, "OBX"):
        for number, first in ((3, 1), (6, 1), (5, 1)):
            code = field_text(msg, obx, number, first)
            refid = field_text(msg, obx, number, first + 1)
            if code.isdigit() and code != "0" and refid.startswith("MDC_"):
                term = mdc.TERMS.get(int(code))
                assert term is not None and term.refid == refid, (code, refid)
                checked += 1
    assert checked >= 20


def test_latin1_monitor_sample_and_its_explanation() -> None:
    msg = parse_message(corpus_bytes("pcd01_oru_r01_monitor_tf2_e11.hl7"))
    reading = render_text(msg)
    assert "Character Set" in reading and "8859/1" in reading
    assert "<500" in reading
    assert "not in this system's nomenclature table" in reading  # monitor terms


def test_hl7apy_reads_the_v26_samples_tolerantly() -> None:
    """An independent reader agrees on the structure of the v2.6 PCD-01 sample."""
    msg = hl7apy_message(
        corpus_bytes("pcd01_oru_r01_monitor_tf2_e11.hl7").decode("latin-1"),
        validation_level=VALIDATION_LEVEL.TOLERANT,
    )
    assert msg.name == "ORU_R01"


def test_explain_decodes_escapes_and_names_our_own_rows() -> None:
    from openinfusion.interop.hl7 import build_oru_r01
    from tests.interop._hl7_support import NOW, observation

    text = build_oru_r01(
        observation(drug="Heparin 25000 units|500 mL ^ test\\x"), control_id="E", now=NOW
    )
    fields = explain(parse_message(text))
    drug = next(f for f in fields if f.location == "OBX-5" and "Heparin" in f.text)
    assert drug.text == "Heparin 25000 units|500 mL ^ test\\x"
    assert "\\F\\" in drug.raw
    rate = [f for f in fields if f.location == "OBX-3" and "157784" in f.raw]
    assert rate[0].meaning == "MDC_FLOW_FLUID_PUMP (157784): rate (programmed)"
    units = [f for f in fields if f.location == "OBX-6" and "265266" in f.raw]
    assert "MDC_DIM_MILLI_L_PER_HR (265266): mL/h" in units[0].meaning


def test_explain_reads_messages_with_other_delimiters() -> None:
    text = (
        "MSH#*@!%#EHR#HOSP###20260301083000+0000##ORU*R01*ORU_R01#C-9#P#2.6\r"
        "OBX#1#NM#157784*MDC_FLOW_FLUID_PUMP*MDC#1.1.2.3#12.5#mL/h*mL/h*UCUM#####R\r"
        "NTE#1##rate !F! dose!S!check\r"
    )
    fields = {f.location: f for f in explain(parse_message(text))}
    assert fields["MSH-2"].text == "*@!%"
    assert fields["OBX-3"].meaning == "MDC_FLOW_FLUID_PUMP (157784): rate (programmed)"
    assert fields["NTE-3"].text == "rate # dose*check"
