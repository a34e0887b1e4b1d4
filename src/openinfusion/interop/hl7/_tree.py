"""Building python-hl7's container tree from checked text, in one flat pass.

python-hl7 (0.4.5) splits recursively, creating a parse plan object per element; this
builds the same ``hl7.Message`` (same container types, same nesting, same ``str()``) with
plain loops, several times faster. ``tests/interop/test_hl7_parse.py`` checks that both
give equal trees for generated messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hl7  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from openinfusion.interop.hl7.parse import Encoding


def _maker(cls: Any, attrs: dict[str, Any]) -> Any:
    """A constructor equal to ``cls(sequence=..., **attrs)`` without its per-call checks."""
    new = list.__new__
    extend = list.extend

    def make(sequence: list[Any]) -> Any:
        obj = new(cls)
        extend(obj, sequence)
        obj.__dict__.update(attrs)
        return obj

    return make


def build_tree(text: str, enc: Encoding) -> Any:
    """The ``hl7.Message`` of a normalised message whose first segment is MSH."""
    seps = "\r" + enc.field + enc.repetition + enc.component + enc.subcomponent
    common = {"esc": enc.escape, "separators": seps, "factory": hl7.Factory}
    message = _maker(hl7.Message, {"separator": seps[0], **common})
    segment = _maker(hl7.Segment, {"separator": seps[1], **common})
    field_of = _maker(hl7.Field, {"separator": seps[2], **common})
    repetition = _maker(hl7.Repetition, {"separator": seps[3], **common})
    component = _maker(hl7.Component, {"separator": seps[4], **common})
    fs, rs, cs, ss = enc.field, enc.repetition, enc.component, enc.subcomponent

    def field(value: str) -> Any:
        if rs not in value and cs not in value and ss not in value:
            return field_of([value])
        reps = []
        for rep in value.split(rs):
            if cs not in rep and ss not in rep:
                reps.append(repetition([rep]))
                continue
            reps.append(
                repetition([component(c.split(ss) if ss in c else [c]) for c in rep.split(cs)])
            )
        return field_of(reps)

    segments = []
    for seg in text.split("\r"):
        if fs not in seg and rs not in seg and cs not in seg and ss not in seg:
            segments.append(segment([seg]))
            continue
        if seg[:3] == "MSH":
            end = seg.find(fs, 4)
            if end < 0:
                end = len(seg)
            rest = seg[end + 1 :]
            items = [field_of(["MSH"]), field_of([fs]), field_of([seg[4:end]])]
            if rest:
                items += [field(x) for x in rest.split(fs)]
        else:
            items = [field(x) for x in seg.split(fs)]
        segments.append(segment(items))
    return message(segments)
