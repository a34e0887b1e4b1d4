"""Coverage-guided fuzzing of the HL7 v2 reader (RELIABILITY B-01), with atheris.

Every input must end as a parsed message or an ``HL7ParseError``; a parsed message must
then survive every reader (PCD-03, PCD-04 reply, ADT^A40, PCD-01 read-back) and
``explain`` with, again, nothing but ``HL7ParseError``; and the reply this system would
send (ACK, RRG^O16, or the AR for unreadable input) must itself parse. Anything else is a
crash.

Run (seeds: the sample corpus; new inputs are written to the first directory)::

    uv run --frozen python tests/interop/fuzz_hl7.py -runs=20000 -max_len=4096 \
        /tmp/hl7-corpus tests/interop/corpus

A crash leaves ``crash-<sha1>`` (or ``-artifact_prefix=...``); minimize it with
``-minimize_crash=1 -runs=10000 <file>`` and keep the result in
``tests/interop/corpus/crashers/``.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["openinfusion.interop.hl7", "hl7"]):
    from openinfusion.interop.hl7.ack import build_ack, build_reject_for_raw
    from openinfusion.interop.hl7.adt import parse_adt_a40
    from openinfusion.interop.hl7.errors import HL7ParseError
    from openinfusion.interop.hl7.explain import render_text
    from openinfusion.interop.hl7.parse import parse_message
    from openinfusion.interop.hl7.pcd01 import read_oru_r01
    from openinfusion.interop.hl7.pcd03 import build_rrg_o16, parse_rgv_o15
    from openinfusion.interop.hl7.pcd04 import parse_alert_ack

READERS = (parse_rgv_o15, parse_adt_a40, parse_alert_ack, read_oru_r01)


NOW = datetime(2026, 3, 1, tzinfo=UTC)


def check(data: bytes) -> None:
    """One input: a message or HL7ParseError, then every reader likewise, then our reply."""
    try:
        msg = parse_message(data, max_bytes=65_536, max_segments=500)
    except HL7ParseError as exc:
        parse_message(build_reject_for_raw(data, exc, now=NOW, control_id="R"))
        return
    str(msg)
    render_text(msg)
    for reader in READERS:
        with contextlib.suppress(HL7ParseError):
            reader(msg)
    issue = HL7ParseError("RXG-4", "x", "fuzz", 207)
    parse_message(build_ack(msg, "AE", errors=[issue], now=NOW, control_id="A"))
    parse_message(build_rrg_o16(msg, accepted=False, errors=[issue], now=NOW, control_id="B"))


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
