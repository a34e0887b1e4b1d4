"""Inbound HL7: RGV^O15 orders answered with RRG^O16, ADT^A40 merges with an ACK, other
types refused (200), and a message sent again answered the same without acting twice."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hl7apy.parser import parse_message as hl7apy_parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.interop.hl7.parse import field_text, parse_message, segments
from openinfusion.interop.inbound import dispatch
from openinfusion.server.app import create_app
from openinfusion.server.permissions import Role
from tests.interop.test_orders import OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)

_msg = itertools.count(1)
CORPUS = Path(__file__).parent / "corpus" / "pcd03_rgv_o15_dopamine_tf2_e23.hl7"


@pytest.fixture(scope="module")
def oenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("inbound")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def rgv(mrn: str, serial: str, control: str, placer: str, dose: str = "10") -> bytes:
    """The IHE TF-2 E.2.3 dopamine order, for this patient, pump and control id."""
    text = CORPUS.read_bytes().decode("ascii").replace("\n", "\r").rstrip("\r") + "\r"
    text = (
        text.replace("|RGV^O15^RGV_O15|1|", f"|RGV^O15^RGV_O15|{control}|")
        .replace("98765^^^IHE^PI", f"{mrn}^^^IHE^PI")
        .replace("ORC|RE|12345|", f"ORC|RE|{placer}|")
        .replace("^^A0001^PUMPVENDOR", f"^^{serial}^PUMPVENDOR")
        .replace("||||||||10|3475^ug/kg/min", f"||||||||{dose}|3475^ug/kg/min")
    )
    return text.encode("ascii")


def answer(env: OrderEnv, raw: bytes) -> tuple[str, object]:
    reply = dispatch(env.ctx, parse_message(raw), raw)
    return reply, parse_message(reply)


def msa(msg: object) -> str:
    return field_text(msg, segments(msg, "MSA")[0], 1)


def errs(msg: object) -> list[tuple[str, str]]:
    """(ERR-2 segment-field, ERR-3 code) of every ERR segment."""
    out = []
    for seg in segments(msg, "ERR"):
        where = f"{field_text(msg, seg, 2, 1)}-{field_text(msg, seg, 2, 3)}"
        out.append((where, field_text(msg, seg, 3, 1)))
    return out


def one_channel_bed(env: OrderEnv) -> tuple[str, str, dict[str, object]]:
    pump_id, serial, patient = env.bed(weight_kg=85.0)
    return pump_id, serial, patient


def test_tf_order_is_accepted_and_prepopulated(oenv: OrderEnv) -> None:
    _pump, serial, patient = one_channel_bed(oenv)
    before = oenv.counts()
    raw = rgv(str(patient["mrn"]), serial, "C-1", "P-1")
    # the two-channel test pump needs the channel: OBX-4 of the pump row names it
    raw = raw.replace(
        b"OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC||",
        b"OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|",
    )
    reply, msg = answer(oenv, raw)
    assert msa(msg) == "AA", reply
    assert field_text(msg, msg[0], 9, 1) == "RRG" and field_text(msg, msg[0], 9, 2) == "O16"
    assert field_text(msg, segments(msg, "ORC")[0], 1) == "OK"
    assert oenv.counts()[0] == before[0] + 1  # one program command
    # an independent parser reads the answer too
    parsed = hl7apy_parse(reply.replace("\n", "\r"), find_groups=False)
    assert parsed.msa.msa_1.value == "AA"

    # the same message again: the same answer, word for word; nothing done twice
    again, _ = answer(oenv, raw)
    assert again == reply and oenv.counts()[0] == before[0] + 1
    # the same control id on other content: refused (205)
    other = raw.replace(b"ORC|RE|P-1|", b"ORC|RE|P-2|")
    _, msg = answer(oenv, other)
    assert msa(msg) == "AR" and errs(msg) == [("MSH-10", "205")]
    # the same placer order in a new message: refused as a replay (ORC-2, 205)
    replay = raw.replace(b"|RGV^O15^RGV_O15|C-1|", b"|RGV^O15^RGV_O15|C-2|")
    _, msg = answer(oenv, replay)
    assert msa(msg) in ("AE", "AR") and ("ORC-2", "205") in errs(msg)
    assert oenv.counts()[0] == before[0] + 1


def test_wrong_patient_and_hard_limit_are_refused_with_err_locations(oenv: OrderEnv) -> None:
    _pump, serial, patient = one_channel_bed(oenv)
    other = oenv.patient()
    before = oenv.counts()
    raw = rgv(str(other["mrn"]), serial, "C-10", "P-10").replace(
        b"MDC_DEV_PUMP_INFUS_VMD^MDC||", b"MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|"
    )
    _, msg = answer(oenv, raw)
    assert msa(msg) in ("AE", "AR") and errs(msg) == [("PID-3", "207")]
    assert field_text(msg, segments(msg, "ORC")[0], 1) == "UA"
    assert "wrong patient" in field_text(msg, segments(msg, "ERR")[0], 8)
    raw = rgv(str(patient["mrn"]), serial, "C-11", "P-11", dose="60").replace(
        b"MDC_DEV_PUMP_INFUS_VMD^MDC||", b"MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|"
    )
    _, msg = answer(oenv, raw)
    assert errs(msg) == [("RXG-15", "207")]
    assert "hard limit" in field_text(msg, segments(msg, "ERR")[0], 8)
    # no channel named, and the pump has two: refused naming OBX-4
    _, msg = answer(oenv, rgv(str(patient["mrn"]), serial, "C-12", "P-12"))
    assert errs(msg) == [("OBX-4", "101")]
    assert oenv.counts() == before


def test_unreadable_order_and_unsupported_type(oenv: OrderEnv) -> None:
    _pump, serial, patient = one_channel_bed(oenv)
    raw = rgv(str(patient["mrn"]), serial, "C-20", "P-20").replace(b"ORC|RE|P-20|", b"ORC|RE||")
    _, msg = answer(oenv, raw)
    assert msa(msg) in ("AE", "AR") and errs(msg) == [("ORC-2", "101")]
    oru = raw.replace(b"RGV^O15^RGV_O15", b"ORU^R01^ORU_R01").replace(b"|C-20|", b"|C-21|")
    _, msg = answer(oenv, oru)
    assert msa(msg) == "AR" and errs(msg) == [("MSH-9", "200")]


def test_adt_a40_merge_is_acknowledged_and_flags(oenv: OrderEnv) -> None:
    _pump, _serial, prior = one_channel_bed(oenv)
    surviving = oenv.patient()
    raw = (
        "MSH|^~\\&|ADT|HOSP|OPENINFUSION|HOSP|20261203120000||ADT^A40^ADT_A39|A40-1|P|2.6\r"
        "EVN|A40|20261203120000+0000\r"
        f"PID|||{surviving['mrn']}^^^HOSP^MR||Doe^Jane||19580302|F\r"
        f"MRG|{prior['mrn']}^^^HOSP^MR\r"
    ).encode()
    reply, msg = answer(oenv, raw)
    assert msa(msg) == "AA", reply
    flags = oenv.client.get("/api/orders/reverifications", headers=oenv.h[Role.NURSE]).json()
    assert [f["surviving_mrn"] for f in flags if f["prior_mrn"] == prior["mrn"]] == [
        surviving["mrn"]
    ]
    # the same merge message again: the same answer; a merge into itself is refused
    assert answer(oenv, raw)[0] == reply
    bad = raw.replace(b"A40-1", b"A40-2").replace(
        f"MRG|{prior['mrn']}".encode(), f"MRG|{surviving['mrn']}".encode()
    )
    _, msg = answer(oenv, bad)
    assert msa(msg) == "AR" and errs(msg)[0][0] == "MRG-1"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seg=st.sampled_from(["PID", "ORC", "RXG", "OBX"]),
    field=st.integers(1, 25),
    junk=st.sampled_from(
        ["", "0", "-5", "NaN", "1e309", "x" * 300, "^^^", "&", "\\E\\", "Dopamine"]
    ),
)
def test_ack_is_aa_exactly_when_one_program_is_issued(
    oenv: OrderEnv, seg: str, field: int, junk: str
) -> None:
    """Whatever one field of the order holds, the answer is a readable RRG^O16 or ACK, and it
    says AA exactly when one program command was issued (never one without AA, or two)."""
    _pump, serial, patient = one_channel_bed(oenv)
    n = next(_msg)
    raw = rgv(str(patient["mrn"]), serial, f"H-{n}", f"HP-{n}").replace(
        b"MDC_DEV_PUMP_INFUS_VMD^MDC||", b"MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|"
    )
    lines = raw.decode().split("\r")
    for i, line in enumerate(lines):
        if line.startswith(seg + "|"):
            parts = line.split("|")
            while len(parts) <= field:
                parts.append("")
            parts[field] = junk
            lines[i] = "|".join(parts)
            break
    mutated = "\r".join(lines).encode()
    before = oenv.counts()[0]
    reply, msg = answer(oenv, mutated)
    issued = oenv.counts()[0] - before
    assert issued in (0, 1)
    assert (msa(msg) == "AA") == (issued == 1), reply
