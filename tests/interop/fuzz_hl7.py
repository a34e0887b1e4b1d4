"""Coverage-guided fuzzing of the HL7 v2 reader (RELIABILITY B-01), with atheris.

Every input must end as a parsed message or an ``HL7ParseError``; a parsed message must
then survive every reader (PCD-03, PCD-04 reply, ADT^A40, PCD-01 read-back) and
``explain`` with, again, nothing but ``HL7ParseError``. Anything else is a crash.

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

import atheris

with atheris.instrument_imports(include=["openinfusion.interop.hl7", "hl7"]):
    from openinfusion.interop.hl7.adt import parse_adt_a40
    from openinfusion.interop.hl7.errors import HL7ParseError
    from openinfusion.interop.hl7.explain import render_text
    from openinfusion.interop.hl7.parse import parse_message
    from openinfusion.interop.hl7.pcd01 import read_oru_r01
    from openinfusion.interop.hl7.pcd03 import parse_rgv_o15
    from openinfusion.interop.hl7.pcd04 import parse_alert_ack

READERS = (parse_rgv_o15, parse_adt_a40, parse_alert_ack, read_oru_r01)


def check(data: bytes) -> None:
    """One input: a message or HL7ParseError, then every reader likewise."""
    try:
        msg = parse_message(data, max_bytes=65_536, max_segments=500)
    except HL7ParseError:
        return
    str(msg)
    render_text(msg)
    for reader in READERS:
        with contextlib.suppress(HL7ParseError):
            reader(msg)


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
