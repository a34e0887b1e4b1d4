"""parse_message: the separator rule, limits, charsets, escapes and header checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.interop.hl7 import HL7ParseError, control_id, message_type, parse_message
from openinfusion.interop.hl7.parse import Encoding, escape, unescape

HEADER = "MSH|^~\\&|EHR|HOSP|OPENINFUSION||20260301083000+0000||ADT^A40^ADT_A39|CTRL-1|P|2.6"
CANON = HEADER + "\rPID|1||MRN-1^^^HOSP^MR||Doe^Jane\r"


def test_canonical_message_reads_back_byte_for_byte() -> None:
    msg = parse_message(CANON.encode())
    assert str(msg) == CANON
    assert message_type(msg) == ("ADT", "A40", "ADT_A39")
    assert control_id(msg) == "CTRL-1"


@pytest.mark.parametrize(
    "variant",
    [
        CANON.replace("\r", "\n"),
        CANON.replace("\r", "\r\n"),
        "\n\r\n" + CANON,
        CANON + "\r\n\r\n",
        CANON.replace("\r", "\r\r"),
        HEADER + "\r\nPID|1||MRN-1^^^HOSP^MR||Doe^Jane\n",
    ],
    ids=["LF", "CRLF", "leading-newline", "trailing-terminators", "blank-segments", "mixed"],
)
def test_separator_variants_normalise_to_the_canonical_message(variant: str) -> None:
    assert str(parse_message(variant)) == CANON


def test_a_line_feed_inside_a_field_is_refused_not_shifted() -> None:
    raw = HEADER + "\rPID|1||MRN-1||Doe\nJane|19600101\r"
    with pytest.raises(HL7ParseError) as info:
        parse_message(raw)
    assert info.value.field == "segment 3"
    assert info.value.code == 100


@pytest.mark.parametrize(
    ("raw", "field", "code"),
    [
        (b"", "message", 100),
        (b"\r\n", "message", 100),
        (b"MSH", "MSH-1", 101),
        (b"MSHX^~\\&|A", "MSH-1", 102),
        (b"MSH|", "MSH-2", 101),
        (b"MSH|^~|A|B", "MSH-2", 101),
        (b"MSH|^^\\&|A", "MSH-2", 102),
        (b"PID|1||X", "message", 100),
        (b"|PID|1", "message", 100),
        (b"BHS|^~\\&|A\rMSH|^~\\&|A", "message", 100),
        (b"MSH|^~\\&|A||||||ORU|X|P|2.6", "MSH-9", 101),
        (b"MSH|^~\\&|A||||||ORU^R01|||2.6", "MSH-10", 101),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P", "MSH-12", 101),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6\rPID\x00|1", "PID-0", 102),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6\rPID|1|a\\Zb\\c", "PID-2", 102),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6\rPID|1|open\\F", "PID-2", 102),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6\rMSH|^~\\&|B", "segment 2", 100),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6\rpid|1", "segment 2", 100),
        (b"MSH|^~\\&|A||||||ORU^R01|X|P|2.6||||||EBCDIC", "MSH-18", 103),
        (b"MSH|^~\\&|A\xff||||||ORU^R01|X|P|2.6", "message", 102),
        (b"MSH|^~\\&|A\xe9||||||ORU^R01|X|P|2.6||||||ASCII", "message", 102),
    ],
)
def test_bad_input_is_refused_naming_the_field(raw: bytes, field: str, code: int) -> None:
    with pytest.raises(HL7ParseError) as info:
        parse_message(raw)
    assert info.value.field == field, str(info.value)
    assert info.value.code == code
    assert info.value.rule


def test_latin1_is_decoded_when_msh18_declares_it() -> None:
    raw = (HEADER + "||||||8859/1\rPID|1||M1||M\xfcller^J\xf6rg\r").encode("latin-1")
    msg = parse_message(raw)
    assert "Müller" in str(msg)


def test_non_default_encoding_characters_are_honoured() -> None:
    raw = "MSH#*@!%#EHR####20260301083000+0000##ORU*R01*ORU_R01#C9#P#2.6\rPID#1##M1##Doe*Jane!T!x\r"
    msg = parse_message(raw)
    assert message_type(msg) == ("ORU", "R01", "ORU_R01")
    from openinfusion.interop.hl7.parse import field_text, segments

    pid = segments(msg, "PID")[0]
    assert field_text(msg, pid, 5, 2) == "Jane%x"  # \T\ with escape '!' is the subcomponent '%'


def test_size_and_segment_limits() -> None:
    with pytest.raises(HL7ParseError) as info:
        parse_message(CANON.encode(), max_bytes=20)
    assert info.value.code == 104
    with pytest.raises(HL7ParseError) as info:
        parse_message(CANON + "NTE|1\r" * 5, max_segments=4)
    assert info.value.code == 104


def test_wrong_input_type_is_a_parse_error() -> None:
    with pytest.raises(HL7ParseError):
        parse_message(12345)  # type: ignore[arg-type]


text_st = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)


@given(text_st)
def test_unescape_inverts_escape(text: str) -> None:
    assert unescape(escape(text)) == text


@given(text_st)
def test_escape_inverts_unescape_with_other_delimiters(text: str) -> None:
    enc = Encoding("#", "*", "@", "!", "%")
    assert unescape(escape(text, enc), enc) == text


@given(st.lists(st.sampled_from(["a", "Z9", " ", "\\F\\", "\\S\\", "\\T\\", "\\R\\", "\\E\\"])))
def test_canonical_escaped_text_round_trips(parts: list[str]) -> None:
    text = "".join(parts)
    assert escape(unescape(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("\\X41\\", "A"), ("\\XC3A9\\", "é"), ("a\\H\\b\\N\\c", "abc"), ("x\\.br\\y", "x\ny")],
)
def test_supported_escape_sequences(text: str, expected: str) -> None:
    assert unescape(text) == expected


@pytest.mark.parametrize("text", ["\\X4\\", "\\XZZ\\", "\\XFF\\", "\\\\", "\\Cxxyy\\", "\\.sp\\"])
def test_unsupported_or_malformed_escapes_are_refused(text: str) -> None:
    with pytest.raises(HL7ParseError) as info:
        unescape(text, field="OBX-5")
    assert info.value.field == "OBX-5"


def test_require_version_reports_203_for_other_versions() -> None:
    from openinfusion.interop.hl7.parse import require_version

    assert require_version(parse_message(CANON)) == "2.6"
    with pytest.raises(HL7ParseError) as info:
        require_version(parse_message(CANON.replace("|2.6\r", "|2.8\r")))
    assert (info.value.field, info.value.code, info.value.value) == ("MSH-12", 203, "2.8")


def test_a_message_near_the_size_limit_is_judged_quickly() -> None:
    """About 1 MB of OBX rows (the default limit) parses, and explains, within seconds."""
    import time

    from openinfusion.interop.hl7 import render_text

    label = "Noradrenaline 4 mg/50 mL in glucose 5 % \\T\\ saline, second line " * 4
    row = (
        "OBX|{n}|ST|184514^MDC_DRUG_NAME_LABEL^MDC|1.1.2.2|" + label + "||||||R\r"
        "OBX|{n}|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.2.3|12.5|mL/h^mL/h^UCUM|||||R\r"
    )
    rows = "".join(row.format(n=n) for n in range(1, 2_450))
    text = HEADER + "\r" + rows
    assert 900_000 < len(text) < 1_048_576
    started = time.perf_counter()
    msg = parse_message(text.encode())
    parsed = time.perf_counter() - started
    render_text(msg)
    assert parsed < 5.0
    assert time.perf_counter() - started < 30.0
    with pytest.raises(HL7ParseError) as info:
        parse_message((text + rows[:200_000]).encode())
    assert info.value.code == 104
