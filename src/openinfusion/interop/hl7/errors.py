"""Errors of the HL7 v2 layer, each naming the field, the value and the rule.

Every error carries its HL7 table 0357 "message error condition code" so that an ACK or
RRG^O16 can report it in ERR-3 (HL7 v2.6 chapter 2, table 0357).
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

# HL7 v2.6 table 0357 (message error condition codes), the rows this layer uses.
SEGMENT_SEQUENCE_ERROR: Final = 100
REQUIRED_FIELD_MISSING: Final = 101
DATA_TYPE_ERROR: Final = 102
TABLE_VALUE_NOT_FOUND: Final = 103
VALUE_TOO_LONG: Final = 104
UNSUPPORTED_MESSAGE_TYPE: Final = 200
UNSUPPORTED_EVENT_CODE: Final = 201
UNSUPPORTED_PROCESSING_ID: Final = 202
UNSUPPORTED_VERSION_ID: Final = 203
UNKNOWN_KEY_IDENTIFIER: Final = 204
DUPLICATE_KEY_IDENTIFIER: Final = 205
APPLICATION_RECORD_LOCKED: Final = 206
APPLICATION_INTERNAL_ERROR: Final = 207

ERROR_TEXT: Final[dict[int, str]] = {
    0: "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_RECORD_LOCKED: "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

_MAX_SHOWN = 60


def _shown(value: str) -> str:
    """The value as it appears in an error text: quoted, control characters visible, cut."""
    text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
    return repr(text)


class HL7ParseError(ValueError):
    """A message (or one field of it) that cannot be accepted.

    ``field`` names the place in HL7 terms (``"MSH-9"``, ``"RXG-4"``, ``"OBX-18"``, or
    ``"message"`` for the whole input), ``value`` is what was found there (possibly cut),
    ``rule`` says what was expected, and ``code`` is the HL7 table 0357 error code.
    """

    def __init__(self, field: str, value: str, rule: str, code: int = DATA_TYPE_ERROR) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        self.code = code
        super().__init__(f"{field} {_shown(value)}: {rule}")

    @property
    def hl7_code(self) -> int:
        """The same table 0357 code, under the name order intake uses."""
        return self.code


@runtime_checkable
class FieldIssue(Protocol):
    """Anything that can be reported in an ERR segment: a field, its value and the rule.

    :class:`HL7ParseError` is one; order intake passes its own issue objects, which carry
    the table 0357 code as ``hl7_code`` instead of ``code``.
    """

    @property
    def field(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def rule(self) -> str: ...


def issue_code(issue: FieldIssue) -> int:
    """The table 0357 code of an issue (``code`` or ``hl7_code``; 207 when it has neither)."""
    for name in ("code", "hl7_code"):
        code = getattr(issue, name, None)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        if isinstance(code, str) and (code.isascii() and code.isdigit()):
            return int(code)
    return APPLICATION_INTERNAL_ERROR
