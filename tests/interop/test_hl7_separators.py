"""RELIABILITY B-02: segment terminators and delimiters, normalised by one rule or refused.

The rule (openinfusion.interop.hl7.parse): CR LF and LF become CR; terminators before
MSH, after the last segment and between segments (empty segments) are dropped; then each
segment must begin with a segment ID and the field separator. Canonical text (CR after
every segment) reads back byte for byte.
"""

from __future__ import annotations

import pytest
from hl7.parser import _split, create_parse_plan
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.interop.hl7 import HL7ParseError, parse_message
from openinfusion.interop.hl7.parse import Encoding, escape, field_text, segments

DEFAULT = Encoding()
OTHER = Encoding("#", "*", "@", "!", "%")

data_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
segment_ids = st.sampled_from(["PID", "PV1", "OBR", "OBX", "NTE", "ZX1", "RXG"])


@st.composite
def messages(draw: st.DrawFn, enc: Encoding = DEFAULT) -> tuple[str, list[list[list[str]]]]:
    """A canonical message with escaped data, and the data it carries (per segment/field)."""
    f, c = enc.field, enc.component
    header = (
        f"MSH{f}{enc.msh2}{f}EHR{f}{f}{f}{f}20260301083000+0000{f}{f}ORU{c}R01{c}ORU_R01"
        f"{f}C-1{f}P{f}2.6"
    )
    body: list[list[list[str]]] = []
    lines = [header]
    for _ in range(draw(st.integers(0, 6))):
        seg_id = draw(segment_ids)
        fields = draw(st.lists(st.lists(data_text, min_size=1, max_size=3), max_size=6))
        body.append(fields)
        text = f.join([seg_id, *(c.join(escape(v, enc) for v in comps) for comps in fields)])
        lines.append(text)
    return "".join(line + "\r" for line in lines), body


def _data(msg: object) -> list[list[list[str]]]:
    out = []
    for seg in list(msg)[1:]:  # type: ignore[call-overload]
        fields = []
        for number in range(1, len(seg)):
            raw = str(seg[number])
            count = max(1, raw.count(_enc(msg).component) + 1)
            fields.append([field_text(msg, seg, number, i) for i in range(1, count + 1)])
        out.append(fields)
    return out


def _enc(msg: object) -> Encoding:
    from openinfusion.interop.hl7.parse import encoding_of

    return encoding_of(msg)


@settings(max_examples=120, deadline=None)
@given(messages())
def test_canonical_input_round_trips_byte_for_byte(case: tuple[str, list[list[list[str]]]]) -> None:
    text, body = case
    msg = parse_message(text.encode("utf-8"))
    assert str(msg) == text
    assert _data(msg) == body


@settings(max_examples=120, deadline=None)
@given(
    messages(),
    st.sampled_from(["\n", "\r\n", "\r\r", "\n\n", "\r\n\r\n"]),
    st.sampled_from(["", "\n", "\r\n", "\r"]),
    st.sampled_from(["", "\r", "\n", "\r\n\r\n"]),
)
def test_every_terminator_style_normalises_to_the_canonical_text(
    case: tuple[str, list[list[list[str]]]], terminator: str, leading: str, trailing: str
) -> None:
    text, _ = case
    variant = leading + text.replace("\r", terminator) + trailing
    assert str(parse_message(variant)) == text


@settings(max_examples=120, deadline=None)
@given(messages(), st.data())
def test_mixed_terminators_normalise_too(
    case: tuple[str, list[list[list[str]]]], data: st.DataObject
) -> None:
    text, _ = case
    lines = text.split("\r")[:-1]
    joined = "".join(line + data.draw(st.sampled_from(["\r", "\n", "\r\n"])) for line in lines)
    assert str(parse_message(joined)) == text


@settings(max_examples=120, deadline=None)
@given(messages(enc=OTHER))
def test_non_default_delimiters_carry_the_same_data(
    case: tuple[str, list[list[list[str]]]],
) -> None:
    text, body = case
    msg = parse_message(text)
    assert str(msg) == text
    assert _data(msg) == body


@settings(max_examples=80, deadline=None)
@given(messages(), st.integers(0, 10_000), st.sampled_from(["\n", "\r"]))
def test_a_break_inside_a_field_never_shifts_fields_silently(
    case: tuple[str, list[list[list[str]]]], where: int, brk: str
) -> None:
    """A terminator pushed into the middle of a segment either is refused, or starts a
    line that is a well-formed segment on its own (then every field still comes from the
    text as sent: nothing is joined, dropped or moved)."""
    text, _ = case
    body_start = text.index("\r") + 1
    if body_start >= len(text) - 1:
        return
    at = body_start + where % (len(text) - 1 - body_start)
    if text[at] == "\r" or text[at - 1] == "\r":
        return
    broken = text[:at] + brk + text[at:]
    try:
        msg = parse_message(broken)
    except HL7ParseError as exc:
        assert exc.code in (100, 102)  # a bad segment start, or an escape cut in two
        return
    assert str(msg) == broken.replace("\n", "\r")


@pytest.mark.parametrize(
    "raw",
    [
        "MSH|^~\\&|A||||||ORU^R01|1|P|2.6\r PID|1",  # space before the segment ID
        "MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rPID|1|Doe\nJane",  # LF inside a field
        "MSH|^~\\&|A||||||ORU^R01|1|P|2.6\r\x0bPID|1",  # a vertical tab as a terminator
        " MSH|^~\\&|A||||||ORU^R01|1|P|2.6",  # leading space
        "\ufeffMSH|^~\\&|A||||||ORU^R01|1|P|2.6",  # byte order mark
        "MSH|^~\\&|A||||||ORU^R01|1|P|2.6\u2028PID|1",  # Unicode line separator
    ],
)
def test_what_the_rule_cannot_normalise_is_refused(raw: str) -> None:
    with pytest.raises(HL7ParseError):
        parse_message(raw)


@settings(max_examples=150, deadline=None)
@given(messages())
def test_tree_equals_python_hl7s_own_split(case: tuple[str, list[list[list[str]]]]) -> None:
    text, _ = case
    ours = parse_message(text)
    body = text[:-1]
    theirs = _split(body, create_parse_plan(body))

    def same(a: object, b: object) -> None:
        assert type(a) is type(b)
        if isinstance(a, list):
            assert isinstance(b, list) and len(a) == len(b)
            mine = {k: v for k, v in a.__dict__.items() if k != "openinfusion_codec"}
            assert mine == b.__dict__
            for x, y in zip(a, b, strict=True):
                same(x, y)
        else:
            assert a == b

    same(ours, theirs)
    assert segments(ours, "MSH")
