"""HL7 v2.6 messages of the IHE Patient Care Device profiles (PCD-01, PCD-03, PCD-04).

- :mod:`.parse`: :func:`parse_message` (one documented separator rule, limits, charset,
  only :class:`HL7ParseError` for bad input), :func:`message_type`, :func:`control_id`,
  :func:`escape` / :func:`unescape`.
- :mod:`.ack`: original-mode ACK (AA/AE/AR with ERR rows) and a reject for unreadable input.
- :mod:`.pcd01`: ORU^R01 of one pump channel (IEEE 11073-10101b pump containment tree).
- :mod:`.pcd03`: RGV^O15 infusion order -> OrderRequest, and the RRG^O16 reply.
- :mod:`.pcd04`: ORU^R40 pump alert (ACM) and the Alert Manager's reply.
- :mod:`.adt`: ADT^A40 patient merge.
- :mod:`.explain`: a named, decoded reading of any message for interface engineers.
- :mod:`.nomenclature`: the MDC codes used, with their sources.
"""

from openinfusion.interop.hl7.ack import build_ack, build_reject_for_raw
from openinfusion.interop.hl7.adt import MergeRequest, parse_adt_a40
from openinfusion.interop.hl7.errors import HL7ParseError
from openinfusion.interop.hl7.explain import ExplainedField, explain, render_text
from openinfusion.interop.hl7.parse import control_id, escape, message_type, parse_message, unescape
from openinfusion.interop.hl7.pcd01 import build_oru_r01, read_oru_r01
from openinfusion.interop.hl7.pcd03 import build_rrg_o16, parse_rgv_o15
from openinfusion.interop.hl7.pcd04 import AlertAck, build_oru_r40, parse_alert_ack

__all__ = [
    "AlertAck",
    "ExplainedField",
    "HL7ParseError",
    "MergeRequest",
    "build_ack",
    "build_oru_r01",
    "build_oru_r40",
    "build_reject_for_raw",
    "build_rrg_o16",
    "control_id",
    "escape",
    "explain",
    "message_type",
    "parse_adt_a40",
    "parse_alert_ack",
    "parse_message",
    "parse_rgv_o15",
    "read_oru_r01",
    "render_text",
    "unescape",
]
