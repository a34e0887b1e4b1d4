"""Reading drug library files (JSON or YAML) into a validated :class:`Library`, all or nothing.

Bounded on purpose (RELIABILITY B-07, B-10): a file over the size limit, with more entries
than a pump holds, not UTF-8, with duplicate keys, or failing any rule is rejected whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.library.schema import Library

# Device limits, ours: Baxter's Master Drug Library allows 32 care areas x 1600 drugs; a
# library several times larger than any real one is refused rather than half-loaded.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_CARE_AREAS = 64

SAMPLE_LIBRARY = "sample_library.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate mapping keys instead of keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise InputError(
                "library", str(key), f"duplicate key at line {key_node.start_mark.line + 1}"
            )
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError("library", key, "duplicate key in JSON object")
        out[key] = value
    return out


def _reject_constant(name: str) -> float:
    raise InputError("library", name, "NaN and Infinity are not valid numbers")


def parse_json_strict(text: str, what: str = "library") -> Any:
    """json.loads that refuses duplicate keys and NaN/Infinity."""
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            what, f"line {exc.lineno} column {exc.colno}", f"is not valid JSON ({exc.msg})"
        ) from None


def parse_library_text(text: str, fmt: str) -> Any:
    """Parse library text as 'json' or 'yaml' into plain Python data."""
    if fmt == "json":
        return parse_json_strict(text)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError("library", where, f"is not valid YAML ({problem})") from None


def library_from_data(data: Any) -> Library:
    """Validate plain data into a Library, reporting every problem with its path."""
    if not isinstance(data, Mapping):
        raise InputError("library", type(data).__name__, "must be a mapping at the top level")
    entries = data.get("entries", [])
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise InputError("entries", len(entries), f"more than {MAX_ENTRIES} entries (device limit)")
    areas = data.get("care_areas", [])
    if isinstance(areas, list) and len(areas) > MAX_CARE_AREAS:
        raise InputError(
            "care_areas", len(areas), f"more than {MAX_CARE_AREAS} care areas (device limit)"
        )
    try:
        return Library.model_validate(data)
    except ValidationError as exc:
        raise InputErrors("library", [_problem(err, data) for err in exc.errors()]) from None


def _problem(err: Any, data: Mapping[str, Any]) -> InputError:
    loc = err.get("loc", ())
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
        try:
            entry = data["entries"][loc[1]]
            path += f" ({entry.get('drug')} in {entry.get('care_area')})"
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, Mapping | list | tuple):
        value = ""
    return InputError(path or "library", value, message)


def load_library(path: str | Path) -> Library:
    """Read and validate a library file (.json, .yaml or .yml); reject it whole on any error."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise InputError("library", str(path), f"cannot be read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise InputError(
            "library", str(path), f"is {size} bytes, over the {MAX_FILE_BYTES}-byte limit"
        )
    raw = file.read_bytes()
    return load_library_bytes(raw, _format_of(file, raw), str(path))


def load_library_bytes(raw: bytes, fmt: str, name: str = "library") -> Library:
    """Validate library bytes in the given format ('json' or 'yaml')."""
    if len(raw) > MAX_FILE_BYTES:
        raise InputError("library", name, f"is over the {MAX_FILE_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            "library", name, f"is not UTF-8 text (bad byte at offset {exc.start})"
        ) from None
    if not text.strip():
        raise InputError("library", name, "is empty")
    return library_from_data(parse_library_text(text, fmt))


def _format_of(file: Path, raw: bytes) -> str:
    suffix = file.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return "json" if raw.lstrip()[:1] in (b"{", b"[") else "yaml"


def sample_library() -> Library:
    """The sample library shipped with openinfusion (sample: review before clinical use)."""
    return load_library_bytes(sample_library_bytes(), "yaml", SAMPLE_LIBRARY)


def sample_library_bytes() -> bytes:
    return resources.files("openinfusion.library.data").joinpath(SAMPLE_LIBRARY).read_bytes()
