"""RELIABILITY B-01: any input ends as a parsed message or an HL7ParseError, in time.

Three layers: a hypothesis grammar-aware generator (segments, fields, repetitions,
components, subcomponents, escapes, delimiters and terminators, then byte-level damage),
the named crash shapes that broke other HL7 parsers, and the atheris harness
(``tests/interop/fuzz_hl7.py``) run for a bounded number of inputs. Minimized crashers
found by fuzzing are kept in ``corpus/crashers/`` and replayed here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.interop.hl7 import (
    HL7ParseError,
    build_ack,
    build_reject_for_raw,
    build_rrg_o16,
    parse_message,
    render_text,
)
from openinfusion.interop.hl7.adt import parse_adt_a40
from openinfusion.interop.hl7.pcd01 import read_oru_r01
from openinfusion.interop.hl7.pcd03 import parse_rgv_o15
from openinfusion.interop.hl7.pcd04 import parse_alert_ack
from tests.interop._hl7_support import CORPUS, NOW

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("fuzz_hl7.py")
CRASHERS = CORPUS / "crashers"
BUDGET_S = 1.0  # one message of at most a few kB must be judged well within a second
READERS = (parse_rgv_o15, parse_adt_a40, parse_alert_ack, read_oru_r01)


def judge(raw: bytes | str) -> None:
    """Parse, then read with every reader and explain: only HL7ParseError may escape; and
    the reply this system would send (ACK / RRG^O16, or the AR for unreadable input)
    parses itself."""
    started = time.perf_counter()
    issue = HL7ParseError("RXG-4", "x", "refused for the test", 207)
    try:
        msg = parse_message(raw)
    except HL7ParseError as exc:
        assert exc.field and exc.rule and isinstance(exc.code, int)
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        parse_message(build_reject_for_raw(data, exc, now=NOW, control_id="R"))
    else:
        parse_message(build_ack(msg, "AE", errors=[issue], now=NOW, control_id="A"))
        parse_message(build_rrg_o16(msg, accepted=False, errors=[issue], now=NOW, control_id="B"))
        str(msg)
        render_text(msg)
        for reader in READERS:
            with contextlib.suppress(HL7ParseError):
                reader(msg)
    assert time.perf_counter() - started < BUDGET_S


# A grammar of HL7 v2 text ---------------------------------------------------------------

GOOD_ATOMS = [
    "",
    "A",
    "MRN-1",
    "2.6",
    "ORU",
    "R01",
    "RGV",
    "O15",
    "ADT",
    "A40",
    "ACK",
    "AA",
    "AE",
    "20260301083000+0000",
    "19600512",
    "12.5",
    "-3",
    "1.1.2.3",
    "69986",
    "MDC",
    "157784",
    "MDC_FLOW_FLUID_PUMP",
    "mL/h",
    "UCUM",
    "kg",
    "68063",
    "X",
    "R",
    "F",
    "\\F\\",
    "\\S\\",
    "\\T\\",
    "\\R\\",
    "\\E\\",
    "\\X41\\",
    "\\XC3A9\\",
    "\\H\\",
    "\\.br\\",
    "é",
    "\u00ff",
    " ",
    "\t",
]
BAD_ATOMS = ["\\X4\\", "\\Zfoo\\", "\\", "\u2028", "\x00"]
# mostly well-formed pieces, so that generated messages often get past the parser
ATOMS = st.sampled_from(GOOD_ATOMS * 6 + BAD_ATOMS)
SEGMENT_IDS = st.sampled_from(
    [
        "PID",
        "PV1",
        "ORC",
        "RXG",
        "RXR",
        "OBR",
        "OBX",
        "MSA",
        "ERR",
        "EVN",
        "MRG",
        "NTE",
        "ZZ1",
        "IN2",
        "TQ1",
    ]
    * 3
    + ["MSH", "pid", "P", ""]
)
MESSAGE_TYPES = st.sampled_from(
    [
        "ORU^R01^ORU_R01",
        "RGV^O15^RGV_O15",
        "ADT^A40^ADT_A39",
        "ACK^R40^ACK",
        "ORU^R40^ORU_R40",
        "ORA^R41^ORA_R41",
        "ORU",
        "",
        "^R01",
    ]
)


@st.composite
def hl7_texts(draw: st.DrawFn) -> str:
    """A message-shaped text: MSH (often valid), then segments of nested fields."""
    delimiters = draw(st.sampled_from(["|^~\\&", "#*@!%", "|^~\\&#", "|^~\\", "||~\\&"]))
    fs, comp, rep, _esc, sub = (delimiters + "&&&&&")[:5]

    def value() -> str:
        subs = draw(st.lists(ATOMS, min_size=1, max_size=3))
        return sub.join(subs)

    def field() -> str:
        reps = draw(st.integers(1, 2))
        return rep.join(
            comp.join(value() for _ in range(draw(st.integers(1, 4)))) for _ in range(reps)
        )

    version = draw(st.sampled_from(["2.6", "2.5", "2.8", "", "9"]))
    msh = (
        f"MSH{delimiters[0]}{delimiters[1:]}{fs}EHR{fs}HOSP{fs}{fs}{fs}20260301083000+0000"
        f"{fs}{fs}{draw(MESSAGE_TYPES).replace('^', comp)}{fs}{draw(ATOMS)}{fs}P{fs}{version}"
    )
    if draw(st.booleans()):
        msh += fs * 6 + draw(st.sampled_from(["UNICODE UTF-8", "8859/1", "ASCII", "", "KOI8"]))
    segments = [msh]
    for _ in range(draw(st.integers(0, 8))):
        fields = [field() for _ in range(draw(st.integers(0, 20)))]
        segments.append(fs.join([draw(SEGMENT_IDS), *fields]))
    terminator = draw(st.sampled_from(["\r", "\n", "\r\n", "\n\r"]))
    return terminator.join(segments) + draw(st.sampled_from(["", "\r", "\r\n", "\n\n"]))


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A grammar text as bytes, then a few byte-level edits (insert, delete, flip)."""
    data = bytearray(
        draw(hl7_texts()).encode(draw(st.sampled_from(["utf-8", "latin-1"])), "replace")
    )
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["insert", "delete", "set"]))
        byte = draw(st.integers(0, 255))
        if action == "insert":
            data.insert(at, byte)
        elif action == "delete":
            del data[at]
        else:
            data[at] = byte
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hl7_texts())
def test_grammar_generated_text_parses_or_is_refused(text: str) -> None:
    judge(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_bytes_parse_or_are_refused(data: bytes) -> None:
    judge(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_are_refused(data: bytes) -> None:
    judge(data)


# Named crash shapes (nHapi / HAPI issues, RELIABILITY B-01) -----------------------------

SEEDS = {
    "empty message": b"",
    "only terminators": b"\r\n\r\n",
    "MSH followed by a non-separator": b"MSHA^~\\&|EHR|||||ORU^R01|1|P|2.6",
    "MSH then a letter then nothing": b"MSHx",
    "bare MSH": b"MSH",
    "bare segment ID": b"PID",
    "bare segment ID after header": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rPID",
    "v2.8 with padded IN2": (
        b"MSH|^~\\&#|A|B|C|D|20260301||ADT^A01^ADT_A01|9|P|2.8\rIN2|1" + b"|" * 120 + b"   \r"
    ),
    "separator-initial segment": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\r|PID|1",
    "separator-initial message": b"|MSH|^~\\&|A",
    "missing encoding characters": b"MSH||A||||||ORU^R01|1|P|2.6",
    "short encoding characters": b"MSH|^|A||||||ORU^R01|1|P|2.6",
    "encoding characters then nothing": b"MSH|^~\\&",
    "escape at end of field": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rNTE|1||x\\",
    "huge digit run in a sub-ID": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rOBR|1|||||||20260301\r"
    b"OBX|1||157784^MDC_FLOW_FLUID_PUMP^MDC|1." + b"9" * 5000 + b".2.3|5",
    "year 1 with an offset": b"MSH|^~\\&|A||||||ADT^A40|1|P|2.6\rEVN|A40|00010101000000+1400\r"
    b"PID|||N\rMRG|O",
    "superscript digit as a code": "MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rOBR|1|||||||20260301\r"
    "OBX|1||\u00b9^MDC_X^MDC|1.1.2.3|5".encode(),
    "MLLP framing inside": b"\x0bMSH|^~\\&|A||||||ORU^R01|1|P|2.6\x1c\r",
    "deep repetition": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rNTE|" + b"~" * 50_000,
    "many components": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rNTE|" + b"^" * 9_000,
    "many fields": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6\rNTE" + b"|" * 999,
    "many segments": b"MSH|^~\\&|A||||||ORU^R01|1|P|2.6" + b"\rNTE|1" * 6000,
    "UTF-8 BOM": b"\xef\xbb\xbfMSH|^~\\&|A||||||ORU^R01|1|P|2.6",
    "NUL everywhere": b"MSH|^~\\&|A\x00||||||ORU^R01|1|P|2.6",
}


@pytest.mark.parametrize("raw", list(SEEDS.values()), ids=list(SEEDS))
def test_named_crash_shapes(raw: bytes) -> None:
    judge(raw)


@pytest.mark.parametrize(
    "name",
    [
        "empty message",
        "MSH followed by a non-separator",
        "bare segment ID",
        "separator-initial segment",
        "missing encoding characters",
        "MLLP framing inside",
    ],
)
def test_named_crash_shapes_are_refused(name: str) -> None:
    with pytest.raises(HL7ParseError):
        parse_message(SEEDS[name])


def test_crashers_replay() -> None:
    """Every minimized crasher ever found is judged correctly now."""
    assert CRASHERS.is_dir()
    for path in sorted(CRASHERS.iterdir()):
        if path.name.startswith("crash-") or path.suffix == ".hl7":
            judge(path.read_bytes())


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(
    not _atheris_available() and os.environ.get("CI") != "true",
    reason="atheris is not installed (dev dependency group); required when CI=true",
)
def test_atheris_harness_finds_no_crash(tmp_path: Path) -> None:
    """Coverage-guided fuzzing, bounded: 20 000 inputs or 30 s, seeded with the corpus."""
    work = tmp_path / "corpus"
    work.mkdir()
    for path in CORPUS.glob("*.hl7"):
        shutil.copy(path, work / path.name)
    for path in CRASHERS.iterdir():
        shutil.copy(path, work / f"crasher-{path.name}")
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "-runs=20000",
            "-max_total_time=30",
            "-max_len=4096",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    artifacts = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))
    ]
    assert result.returncode == 0 and not artifacts, (artifacts, result.stderr[-3000:])
    assert "Done" in result.stderr, result.stderr[-2000:]


def _parses(text: str) -> bool:
    try:
        parse_message(text)
    except HL7ParseError:
        return False
    return True


def test_the_grammar_reaches_past_the_parser() -> None:
    """The generator is not all noise: it makes messages the parser accepts, and refuses."""
    from hypothesis import find

    # Derandomized with a budget of its own, so a CI profile cannot shrink the search.
    budget = settings(database=None, max_examples=2_000, derandomize=True)
    assert _parses(find(hl7_texts(), _parses, settings=budget))
    assert not _parses(find(hl7_texts(), lambda t: not _parses(t), settings=budget))
