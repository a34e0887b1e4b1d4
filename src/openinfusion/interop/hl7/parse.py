"""Reading an HL7 v2 message: one normalisation rule, strict checks, one error type.

The separator rule (RELIABILITY B-02), applied in this order:

1. Bytes are decoded by the character set declared in MSH-18 (HL7 v2.6 table 0211):
   empty or ``UNICODE UTF-8`` -> UTF-8, ``8859/1`` -> ISO-8859-1, ``ASCII`` -> ASCII. Any
   other value is refused (103); bytes the declared set cannot decode are refused (102).
2. Segment terminators: CR LF and a lone LF each become CR (the HL7 segment terminator,
   v2.6 section 2.5.2). Terminators before MSH and after the last segment are dropped, and
   empty segments (two terminators in a row) are dropped. Nothing else is changed.
3. Every segment must then start with a three-character segment ID (``[A-Z][A-Z0-9]{2}``)
   followed by the field separator or the end of the segment; a line that does not (for
   example the tail of a field that held a raw line feed) is refused (100) rather than
   read as a shifted segment.
4. MSH-1 and MSH-2 are honoured as sent (any distinct printable punctuation), but MSH-2
   must hold at least the four encoding characters (component, repetition, escape,
   subcomponent); a fifth (the v2.7 truncation character) is allowed and ignored.
5. Raw control characters (C0 other than the segment terminator and TAB, DEL, C1
   including NEL) and the Unicode line and paragraph separators are refused (102): data
   carries them only escaped (``\\X0A\\``). Malformed escape sequences are refused too
   (see :func:`unescape`).

So a canonical message (CR-terminated segments, valid escapes) reads back byte for byte:
``str(parse_message(raw)) == raw``. Anything else raises :class:`HL7ParseError`, and only
that: no other exception escapes, recursion depth is bounded by the five HL7 levels and
work is linear in the size of the input, which is capped by ``max_bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import hl7  # type: ignore[import-untyped]
from openinfusion.interop.hl7._tree import build_tree
from openinfusion.interop.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_VERSION_ID,
    VALUE_TOO_LONG,
    HL7ParseError,
)

__all__ = [
    "DEFAULT_ENCODING",
    "Encoding",
    "charset",
    "component",
    "control_id",
    "encoding_of",
    "escape",
    "field_text",
    "hd",
    "parse_message",
    "raw_field",
    "require_version",
    "segments",
    "unescape",
    "version",
]

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+\Z")
_HEADER_IDS: Final = ("MSH", "BHS", "FHS")

# HL7 v2.6 table 0211 (alternate character sets) -> Python codec, for the values accepted.
CHARSETS: Final[dict[str, str]] = {
    "": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "8859/1": "latin-1",
    "ASCII": "ascii",
}


@dataclass(frozen=True, slots=True)
class Encoding:
    """The five delimiters of a message: MSH-1 and the four characters of MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        """The encoding characters as MSH-2 spells them."""
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_ENCODING: Final = Encoding()


def escape(text: str, enc: Encoding = DEFAULT_ENCODING, *, codec: str = "utf-8") -> str:
    """Escape text for an HL7 field (v2.6 section 2.7.4).

    Delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``; control characters (CR, LF, C1)
    and the Unicode line/paragraph separators become ``\\Xhh..\\`` (their bytes in
    ``codec``, the message's character set) so that no segment or field can be forged
    from data.
    """
    table = {
        enc.field: "F",
        enc.component: "S",
        enc.subcomponent: "T",
        enc.repetition: "R",
        enc.escape: "E",
    }
    e = enc.escape
    out: list[str] = []
    for ch in text:
        code = table.get(ch)
        if code is not None:
            out.append(f"{e}{code}{e}")
        elif ch == "\r" or (_FORBIDDEN.match(ch) and not 0xD800 <= ord(ch) <= 0xDFFF):
            out.append(f"{e}X{ch.encode(codec).hex().upper()}{e}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(
    text: str,
    enc: Encoding = DEFAULT_ENCODING,
    *,
    codec: str = "utf-8",
    field: str = "value",
) -> str:
    """Decode the escape sequences of one field value (v2.6 section 2.7).

    Handled: ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (delimiters), ``\\Xhh...\\`` (bytes in the
    message's character set, ``codec``), ``\\H\\``/``\\N\\`` (highlighting: dropped, it
    carries no text) and ``\\.br\\`` (line break -> LF). Refused with
    :class:`HL7ParseError` (102): an unterminated or empty sequence, odd or non-hex
    ``\\X`` digits, bytes the character set cannot decode, and every other sequence
    (character-set switches ``\\C``/``\\M``, local ``\\Z``, other formatting commands),
    whose meaning this system cannot honour.
    """
    e = enc.escape
    if e not in text:
        return text
    delimiters = {
        "F": enc.field,
        "S": enc.component,
        "T": enc.subcomponent,
        "R": enc.repetition,
        "E": enc.escape,
    }
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        start = text.find(e, i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        end = text.find(e, start + 1)
        if end < 0:
            raise HL7ParseError(
                field, text, f"unterminated escape sequence: {e!r} opened, never closed"
            )
        body = text[start + 1 : end]
        if body in delimiters:
            out.append(delimiters[body])
        elif body.startswith("X"):
            digits = body[1:]
            if not _HEX.match(digits):
                raise HL7ParseError(
                    field, text, "\\X escape needs an even, non-zero number of hex digits"
                )
            try:
                out.append(bytes.fromhex(digits).decode(codec))
            except UnicodeDecodeError:
                raise HL7ParseError(
                    field, text, f"\\X{digits}\\ is not valid text in the charset {codec}"
                ) from None
        elif body in ("H", "N"):
            pass
        elif body == ".br":
            out.append("\n")
        else:
            raise HL7ParseError(
                field,
                text,
                f"escape sequence {e}{body[:20]}{e} is not supported "
                "(only F S T R E, X hex, H N and .br)",
            )
        i = end + 1
    return "".join(out)


def _fail_at(text: str, index: int, enc: Encoding, rule: str, code: int) -> HL7ParseError:
    """An error naming the segment and field that hold ``text[index]``."""
    seg_start = text.rfind("\r", 0, index) + 1
    seg_id = text[seg_start : seg_start + 3]
    number = text.count(enc.field, seg_start, index)
    if seg_id == "MSH":
        number += 1
    seg_end = text.find("\r", index)
    segment = text[seg_start : seg_end if seg_end >= 0 else len(text)]
    return HL7ParseError(f"{seg_id}-{number}", segment[:200], rule, code)


def _header_charset(text: str) -> str:
    """MSH-18 of a (possibly not yet decoded) header line, first repetition, upper case."""
    if not text.startswith("MSH") or len(text) < 6:
        return ""
    fs = text[3]
    fields = text.split(fs)
    if len(fields) <= 17:
        return ""
    rep = text[5] if len(text) > 5 else "~"
    comp = text[4]
    return fields[17].split(rep)[0].split(comp)[0].strip().upper()


def _codec_for(declared: str) -> str:
    codec = CHARSETS.get(declared)
    if codec is None:
        raise HL7ParseError(
            "MSH-18",
            declared,
            "character set not supported: use UNICODE UTF-8 (or empty), 8859/1 or ASCII",
            TABLE_VALUE_NOT_FOUND,
        )
    return codec


def _decode(raw: bytes) -> str:
    head = raw.lstrip(b"\r\n")
    cut = len(head)
    for terminator in (b"\r", b"\n"):
        at = head.find(terminator)
        if 0 <= at < cut:
            cut = at
    codec = _codec_for(_header_charset(head[:cut].decode("latin-1")))
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise HL7ParseError(
            "message",
            repr(raw[max(0, exc.start - 10) : exc.end + 10]),
            f"byte {exc.start} is not valid {codec} (the character set MSH-18 declares)",
            DATA_TYPE_ERROR,
        ) from None


def _normalise(text: str) -> str:
    """Rule step 2: CRLF and LF become CR; outer and repeated terminators are dropped."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    while "\r\r" in text:
        text = re.sub("\r{2,}", "\r", text)
    return text


def _encoding_from_header(text: str) -> Encoding:
    if not text:
        raise HL7ParseError(
            "message", "", "empty message: a message begins with MSH", SEGMENT_SEQUENCE_ERROR
        )
    if text[:3] in ("BHS", "FHS"):
        raise HL7ParseError(
            "message",
            text[:40],
            "batches and files are not accepted: send one message (MSH first) per frame",
            SEGMENT_SEQUENCE_ERROR,
        )
    if not text.startswith("MSH"):
        raise HL7ParseError(
            "message", text[:40], "a message begins with an MSH segment", SEGMENT_SEQUENCE_ERROR
        )
    fs = text[3:4]
    if not _is_delimiter(fs):
        raise HL7ParseError(
            "MSH-1",
            fs,
            "the field separator must follow 'MSH' and be printable punctuation",
            REQUIRED_FIELD_MISSING if fs in ("", "\r") else DATA_TYPE_ERROR,
        )
    end = text.find(fs, 4)
    seg_end = text.find("\r")
    if seg_end < 0:
        seg_end = len(text)
    if end < 0 or end > seg_end:
        end = seg_end
    chars = text[4:end]
    if len(chars) < 4:
        raise HL7ParseError(
            "MSH-2",
            chars,
            "missing encoding characters: component, repetition, escape and subcomponent "
            "characters are required (e.g. ^~\\&)",
            REQUIRED_FIELD_MISSING,
        )
    if len(chars) > 5:
        raise HL7ParseError(
            "MSH-2", chars, "at most 5 encoding characters (4, plus the v2.7 truncation one)"
        )
    if not all(_is_delimiter(c) for c in chars) or len(set(chars + fs)) != len(chars) + 1:
        raise HL7ParseError(
            "MSH-2",
            chars,
            "encoding characters must be distinct printable punctuation, "
            "different from the field separator",
        )
    return Encoding(fs, chars[0], chars[1], chars[2], chars[3])


def _is_delimiter(ch: str) -> bool:
    return len(ch) == 1 and 0x21 <= ord(ch) <= 0x7E and not ch.isalnum()


_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _check_characters(text: str, enc: Encoding) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    index = found.start()
    o = ord(text[index])
    if 0xD800 <= o <= 0xDFFF:
        raise _fail_at(text, index, enc, "lone surrogate: not a character", DATA_TYPE_ERROR)
    raise _fail_at(
        text,
        index,
        enc,
        f"raw control character U+{o:04X} is not allowed in a field (escape it as \\X{o:02X}\\)",
        DATA_TYPE_ERROR,
    )


# Element limits (104): far above any PCD message, low enough that no input can make the
# reader build millions of objects (each delimiter becomes one python-hl7 container).
MAX_FIELDS_PER_SEGMENT: Final = 1_000
MAX_REPETITIONS_PER_SEGMENT: Final = 1_000
MAX_COMPONENTS_PER_SEGMENT: Final = 10_000
MAX_SUBCOMPONENTS_PER_SEGMENT: Final = 10_000
MAX_DELIMITERS_PER_MESSAGE: Final = 250_000


def _check_counts(number: int, seg: str, enc: Encoding) -> int:
    limits = (
        (enc.field, MAX_FIELDS_PER_SEGMENT, "fields"),
        (enc.repetition, MAX_REPETITIONS_PER_SEGMENT, "repetitions"),
        (enc.component, MAX_COMPONENTS_PER_SEGMENT, "components"),
        (enc.subcomponent, MAX_SUBCOMPONENTS_PER_SEGMENT, "subcomponents"),
    )
    total = 0
    for delimiter, limit, what in limits:
        count = seg.count(delimiter)
        if count >= limit:
            raise HL7ParseError(
                f"segment {number}",
                seg[:40],
                f"more than {limit} {what} in one segment",
                VALUE_TOO_LONG,
            )
        total += count
    return total


def _check_segments(parts: list[str], enc: Encoding, codec: str) -> None:
    delimiters = 0
    for number, seg in enumerate(parts, start=1):
        delimiters += _check_counts(number, seg, enc)
        if delimiters > MAX_DELIMITERS_PER_MESSAGE:
            raise HL7ParseError(
                "message",
                f"{delimiters} delimiters",
                f"more than {MAX_DELIMITERS_PER_MESSAGE} fields, repetitions and components",
                VALUE_TOO_LONG,
            )
        seg_id = seg[:3]
        if not _SEGMENT_ID.match(seg_id) or (len(seg) > 3 and seg[3] != enc.field):
            raise HL7ParseError(
                f"segment {number}",
                seg[:40],
                "a segment begins with a three-character ID (A-Z, 0-9) followed by the "
                "field separator: a line break inside a field is not allowed",
                SEGMENT_SEQUENCE_ERROR,
            )
        if number > 1 and seg_id in _HEADER_IDS:
            raise HL7ParseError(
                f"segment {number}",
                seg[:40],
                f"one message per parse: {seg_id} may only be the first segment",
                SEGMENT_SEQUENCE_ERROR,
            )
        if enc.escape not in seg:
            continue
        fields = seg.split(enc.field)
        first = 1
        if seg_id == "MSH":
            first = 2  # fields[1] is MSH-2, whose escape character is not an escape
        for index in range(first, len(fields)):
            value = fields[index]
            if enc.escape in value:
                number_in_seg = index + 1 if seg_id == "MSH" else index
                name = f"{seg_id}-{number_in_seg}"
                for piece in re.split(
                    "[" + re.escape(enc.repetition + enc.component + enc.subcomponent) + "]",
                    value,
                ):
                    unescape(piece, enc, codec=codec, field=name)


def parse_message(
    raw: bytes | str, *, max_bytes: int = 1_048_576, max_segments: int = 5_000
) -> hl7.Message:
    """Parse one HL7 v2 message into an ``hl7.Message`` (python-hl7), by the module's rule.

    ``max_bytes`` caps the input size (UTF-8 bytes for text) and ``max_segments`` the
    number of segments (both 104). MSH-9 (code and trigger), MSH-10 and MSH-12 are required
    (101): without them no acknowledgement can be built. The one exception is the trigger
    of an ACK, which is empty when it answers input whose own MSH-9 could not be read.
    Raises :class:`HL7ParseError` and nothing else.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if len(data) > max_bytes:
            raise HL7ParseError(
                "message",
                f"{len(data)} bytes",
                f"larger than the {max_bytes}-byte limit",
                VALUE_TOO_LONG,
            )
        text = _decode(data)
    elif isinstance(raw, str):
        if len(raw) > max_bytes or len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
            raise HL7ParseError(
                "message",
                f"{len(raw)} characters",
                f"larger than the {max_bytes}-byte limit",
                VALUE_TOO_LONG,
            )
        text = raw
    else:
        raise HL7ParseError(
            "message", type(raw).__name__, "a message is bytes or str", DATA_TYPE_ERROR
        )
    text = _normalise(text)
    enc = _encoding_from_header(text)
    if text.count("\r") + 1 > max_segments:
        raise HL7ParseError(
            "message",
            f"{text.count(chr(13)) + 1} segments",
            f"more than the {max_segments}-segment limit",
            VALUE_TOO_LONG,
        )
    _check_characters(text, enc)
    codec = _codec_for(_header_charset(text[: text.find("\r")] if "\r" in text else text))
    parts = text.split("\r")
    _check_segments(parts, enc, codec)
    msg = build_tree(text, enc)
    msg.__dict__[_CODEC_ATTR] = codec
    _require_header(msg)
    return msg


def _require_header(msg: Any) -> None:
    msh = msg[0]
    enc = encoding_of(msg)
    code = component(raw_field(msh, 9), 1, enc=enc)
    trigger = component(raw_field(msh, 9), 2, enc=enc)
    if not code or (not trigger and code != "ACK"):
        raise HL7ParseError(
            "MSH-9",
            raw_field(msh, 9),
            "message type needs a code and a trigger event (e.g. ORU^R01^ORU_R01)",
            REQUIRED_FIELD_MISSING,
        )
    if not raw_field(msh, 10):
        raise HL7ParseError("MSH-10", "", "message control ID is required", REQUIRED_FIELD_MISSING)
    if not raw_field(msh, 12):
        raise HL7ParseError("MSH-12", "", "version ID is required", REQUIRED_FIELD_MISSING)


def encoding_of(msg: Any) -> Encoding:
    """The delimiters a parsed message was written with."""
    seps: str = msg.separators  # "\r" + field + repetition + component + subcomponent
    return Encoding(seps[1], seps[3], seps[2], msg.esc, seps[4])


def raw_field(segment: Any, number: int) -> str:
    """Field ``number`` of a segment as sent (escapes intact); "" when absent.

    For MSH the numbering is HL7's: ``raw_field(msh, 9)`` is MSH-9.
    """
    if number < 1 or number >= len(segment):
        return ""
    return str(segment[number])


def component(
    raw: str,
    comp: int = 1,
    *,
    rep: int = 1,
    sub: int = 0,
    enc: Encoding = DEFAULT_ENCODING,
    unescaped: bool = False,
    codec: str = "utf-8",
    field: str = "value",
) -> str:
    """One repetition/component/subcomponent (1-based; ``sub=0`` = whole component)."""
    reps = raw.split(enc.repetition)
    if rep > len(reps):
        return ""
    comps = reps[rep - 1].split(enc.component)
    if comp > len(comps):
        return ""
    value = comps[comp - 1]
    if sub:
        subs = value.split(enc.subcomponent)
        value = subs[sub - 1] if sub <= len(subs) else ""
    return unescape(value, enc, codec=codec, field=field) if unescaped else value


_CODEC_ATTR: Final = "openinfusion_codec"


def charset(msg: Any) -> str:
    """The Python codec of the message's MSH-18 character set."""
    known = msg.__dict__.get(_CODEC_ATTR)
    if isinstance(known, str):
        return known
    return _codec_for(_header_charset(str(msg[0])))


def field_text(
    msg: Any, segment: Any, number: int, comp: int = 1, *, rep: int = 1, sub: int = 0
) -> str:
    """Decoded text of one component of a field of ``segment`` (escapes resolved)."""
    enc = encoding_of(msg)
    name = f"{segment[0]}-{number}"
    return component(
        raw_field(segment, number),
        comp,
        rep=rep,
        sub=sub,
        enc=enc,
        unescaped=True,
        codec=charset(msg),
        field=name,
    )


def hd(msg: Any, segment: Any, number: int) -> tuple[str, str, str]:
    """An HD field decoded: (namespace ID, universal ID, universal ID type)."""
    return (
        field_text(msg, segment, number, 1),
        field_text(msg, segment, number, 2),
        field_text(msg, segment, number, 3),
    )


def segments(msg: Any, segment_id: str) -> list[Any]:
    """All segments with this ID, in order (empty list when none)."""
    return [seg for seg in msg if str(seg[0]) == segment_id]


def message_type(msg: Any) -> tuple[str, str, str]:
    """MSH-9: (message code, trigger event, message structure), e.g. (ORU, R01, ORU_R01)."""
    msh = msg[0]
    return (
        field_text(msg, msh, 9, 1),
        field_text(msg, msh, 9, 2),
        field_text(msg, msh, 9, 3),
    )


def control_id(msg: Any) -> str:
    """MSH-10, the message control ID that MSA-2 of the reply echoes."""
    return field_text(msg, msg[0], 10)


def version(msg: Any) -> str:
    """MSH-12 version ID (first component), e.g. ``2.6``."""
    return field_text(msg, msg[0], 12)


# IHE PCD TF-2 messages are v2.6; the PCD-03 examples of TF-2 E.2.3 are still v2.5.
SUPPORTED_VERSIONS: Final = ("2.5", "2.5.1", "2.6")


def require_version(msg: Any, supported: tuple[str, ...] = SUPPORTED_VERSIONS) -> str:
    """MSH-12, or :class:`HL7ParseError` 203 (unsupported version id) when not supported."""
    found = version(msg)
    if found not in supported:
        raise HL7ParseError(
            "MSH-12",
            found,
            f"version not supported: one of {', '.join(supported)}",
            UNSUPPORTED_VERSION_ID,
        )
    return found


__all__ += ["message_type"]
