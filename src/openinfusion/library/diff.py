"""What changed between two library versions, for pharmacist review before signing.

Care areas are matched by id, entries by (care area, drug, therapy). Changes are listed
per field path with old and new values, e.g. ``limits.dose.hard_max: 20 -> 30``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openinfusion.library.schema import Library


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One care area or entry present in both versions with its changed fields."""

    key: str
    changes: tuple[FieldChange, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "changes": [c.as_dict() for c in self.changes]}


@dataclass(frozen=True, slots=True)
class LibraryDiff:
    old_version: str
    new_version: str
    header: tuple[FieldChange, ...] = ()
    care_areas_added: tuple[str, ...] = ()
    care_areas_removed: tuple[str, ...] = ()
    care_areas_changed: tuple[ItemChange, ...] = ()
    entries_added: tuple[str, ...] = ()
    entries_removed: tuple[str, ...] = ()
    entries_changed: tuple[ItemChange, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.header,
                self.care_areas_added,
                self.care_areas_removed,
                self.care_areas_changed,
                self.entries_added,
                self.entries_removed,
                self.entries_changed,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "identical": self.is_empty,
            "header": [c.as_dict() for c in self.header],
            "care_areas": {
                "added": list(self.care_areas_added),
                "removed": list(self.care_areas_removed),
                "changed": [c.as_dict() for c in self.care_areas_changed],
            },
            "entries": {
                "added": list(self.entries_added),
                "removed": list(self.entries_removed),
                "changed": [c.as_dict() for c in self.entries_changed],
            },
        }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to {"a.b.c": leaf}; lists stay whole leaves (concentrations, aliases)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    a, b = _flatten(old), _flatten(new)
    return tuple(
        FieldChange(path, a.get(path), b.get(path))
        for path in sorted(set(a) | set(b))
        if a.get(path) != b.get(path)
    )


def _entry_key(entry: dict[str, Any]) -> str:
    therapy = f" ({entry['therapy']})" if entry.get("therapy") else ""
    return f"{entry['care_area']}/{entry['drug']}{therapy}"


def diff_libraries(old: Library, new: Library) -> LibraryDiff:
    """Compare two libraries field by field."""
    old_d, new_d = old.model_dump(mode="json"), new.model_dump(mode="json")
    header_old = {k: v for k, v in old_d.items() if k not in ("care_areas", "entries")}
    header_new = {k: v for k, v in new_d.items() if k not in ("care_areas", "entries")}

    def split(items: list[dict[str, Any]], key: Any) -> dict[str, dict[str, Any]]:
        return {key(item): item for item in items}

    areas_old = split(old_d["care_areas"], lambda a: a["id"])
    areas_new = split(new_d["care_areas"], lambda a: a["id"])
    entries_old = split(old_d["entries"], _entry_key)
    entries_new = split(new_d["entries"], _entry_key)

    def changed(
        a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]
    ) -> tuple[ItemChange, ...]:
        out = []
        for key in sorted(set(a) & set(b)):
            changes = _changes(a[key], b[key])
            if changes:
                out.append(ItemChange(key, changes))
        return tuple(out)

    return LibraryDiff(
        old_version=old.version,
        new_version=new.version,
        header=_changes(header_old, header_new),
        care_areas_added=tuple(sorted(set(areas_new) - set(areas_old))),
        care_areas_removed=tuple(sorted(set(areas_old) - set(areas_new))),
        care_areas_changed=changed(areas_old, areas_new),
        entries_added=tuple(sorted(set(entries_new) - set(entries_old))),
        entries_removed=tuple(sorted(set(entries_old) - set(entries_new))),
        entries_changed=changed(entries_old, entries_new),
    )
