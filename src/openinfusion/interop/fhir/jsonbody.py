"""Strict JSON for request bodies under ``/fhir`` (RELIABILITY B-05), before any model sees it.

Refused with a named rule: bytes that are not UTF-8, a byte-order mark, JSON syntax errors,
duplicate keys (RFC 8259 §4 leaves them undefined; FHIR JSON forbids them), the non-JSON
constants ``NaN``/``Infinity``, numbers that overflow a double (``1e309``), nesting deeper
than :data:`MAX_DEPTH`, arrays longer than :data:`MAX_ARRAY` and more than :data:`MAX_NODES`
values in all. The body itself is already capped by the server's byte limit, so time and
memory stay bounded; nesting is checked by the C decoder's recursion guard first (a
10,000-level body raises there, not in Python) and then iteratively.
"""

from __future__ import annotations

import json
import math
from typing import Any

from openinfusion.interop.fhir.outcome import FhirError, fail

MAX_DEPTH = 24  # a MedicationRequest is about 8 deep; FHIR resources rarely pass 15
MAX_ARRAY = 100  # elements of any one array
MAX_NODES = 5000  # values in the whole document


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a 64-bit float")
    return value


def parse_json(raw: bytes) -> Any:
    """The decoded document, or a 400 FhirError naming the problem."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise fail(400, "body", None, "must not start with a byte-order mark")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise fail(400, "body", f"byte {exc.start}", "is not valid UTF-8") from exc
    if not text.strip():
        raise fail(400, "body", None, "is empty; a JSON resource is required")
    try:
        data = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )
    except _Duplicate as exc:
        raise fail(400, "body", str(exc), "duplicate key in a JSON object") from exc
    except RecursionError as exc:
        raise fail(400, "body", None, f"nesting is deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError and the hooks' refusals
        raise fail(400, "body", None, f"is not valid JSON: {str(exc)[:120]}") from exc
    check_shape(data)
    return data


def check_shape(data: Any) -> None:
    """Depth, array length and node count within bounds (iterative: no recursion)."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    nodes = 0
    while stack:
        value, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise fail(400, "body", None, f"has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise fail(400, path or "body", None, f"nesting is deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{path}.{k}" if path else k) for k, v in value.items())
        elif isinstance(value, list):
            if len(value) > MAX_ARRAY:
                raise fail(400, path or "body", f"{len(value)} items", f"at most {MAX_ARRAY} items")
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))


__all__ = ["MAX_ARRAY", "MAX_DEPTH", "MAX_NODES", "FhirError", "parse_json"]
