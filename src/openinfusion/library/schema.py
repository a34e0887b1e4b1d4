"""The drug library file format (pydantic v2): care areas, drug entries, four-bound limits.

One library holds care areas (profiles such as Adult ICU or NICU with their patient and
pump settings) and a flat list of drug entries, each bound to one care area, like the rows
of a commercial library export. Every limit group has up to four bounds,
``hard_min <= soft_min <= soft_max <= hard_max`` (Baxter-style; Alaris libraries leave the
hard minimum empty), and an optional ``default`` (initial value).

Validation is whole-library: any problem rejects the whole file and nothing is applied.
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openinfusion.errors import InputError
from openinfusion.units import (
    Basis,
    Concentration,
    Dimension,
    DoseUnit,
    format_number,
    parse_amount_unit,
    parse_concentration,
    parse_dose_unit,
)

if TYPE_CHECKING:
    from openinfusion.library.ders import CompiledArea, CompiledEntry

FORMAT = "openinfusion-library/1"

# A limit: a finite, non-negative number (ints accepted, booleans and strings are not).
LimitValue = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
PositiveValue = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]

_VERSION = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
BOUNDS = ("hard_min", "soft_min", "soft_max", "hard_max")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Limits(_Model):
    """Four optional bounds and an optional default, in the unit of their context."""

    hard_min: LimitValue | None = None
    soft_min: LimitValue | None = None
    soft_max: LimitValue | None = None
    hard_max: LimitValue | None = None
    default: LimitValue | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        present = [
            (name, getattr(self, name)) for name in BOUNDS if getattr(self, name) is not None
        ]
        for (lo_name, lo), (hi_name, hi) in itertools.pairwise(present):
            if lo > hi:
                raise ValueError(
                    f"{lo_name} {format_number(lo)} > {hi_name} {format_number(hi)}; "
                    "limits must satisfy hard_min <= soft_min <= soft_max <= hard_max"
                )
        if self.default is not None:
            lo = self.hard_min if self.hard_min is not None else self.soft_min
            hi = self.hard_max if self.hard_max is not None else self.soft_max
            if (lo is not None and self.default < lo) or (hi is not None and self.default > hi):
                raise ValueError(f"default {format_number(self.default)} is outside the limits")
        return self

    @property
    def has_max(self) -> bool:
        return self.hard_max is not None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in BOUNDS)


class UnitLimits(Limits):
    """Limits that carry their own unit (bolus, loading dose, concentration range)."""

    unit: NonEmpty


class InfusionType(StrEnum):
    """How an entry is given: continuous infusion, intermittent dose, bolus only, PCA, fluid."""

    CONTINUOUS = "continuous"
    INTERMITTENT = "intermittent"
    BOLUS = "bolus"
    PCA = "pca"
    FLUID = "fluid"


class Population(StrEnum):
    ADULT = "adult"
    PAEDIATRIC = "paediatric"
    NEONATAL = "neonatal"


class LibraryStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    RELEASED = "released"


class EntryLimits(_Model):
    """Every limit group of a drug entry. ``dose`` is in the entry's ``dose_unit``."""

    dose: Limits = Limits()
    rate_ml_h: Limits = Limits()
    bolus: UnitLimits | None = None
    loading: UnitLimits | None = None
    duration_min: Limits = Limits()
    vtbi_ml: Limits = Limits()
    concentration: UnitLimits | None = None


class CumulativeLimit(_Model):
    """Maximum amount over a rolling window, e.g. 4 g of paracetamol per 24 h."""

    max: PositiveValue
    unit: NonEmpty
    window_h: PositiveValue


class PcaLimits(_Model):
    """Patient-controlled analgesia limits (Open PCA Pump Table 6; Alaris PCA sheet)."""

    dose_unit: NonEmpty
    demand: Limits
    lockout_min: Limits
    max_dose: Limits
    max_dose_window_h: PositiveValue = 4.0
    bolus_included_in_max: bool = True


class BasicInfusion(_Model):
    """Infusions of drugs not in the library: mL/h only, flagged as unprotected."""

    allowed: bool = True
    rate_ml_h: Limits = Limits()
    advisory: str = "This infusion DOES NOT have dose error reduction protection."


class CareArea(_Model):
    """A profile: patient population, its size limits, and pump settings for the area."""

    id: Identifier
    name: NonEmpty
    population: Population
    weight_kg: Limits = Limits()
    age_years: Limits = Limits()
    max_bsa_m2: PositiveValue | None = None
    max_rate_ml_h: PositiveValue
    max_vtbi_ml: PositiveValue | None = None
    occlusion_pressure_mmhg: PositiveValue
    air_in_line_ul: PositiveValue
    kvo_rate_ml_h: LimitValue = 1.0
    basic_infusion: BasicInfusion = BasicInfusion()

    @cached_property
    def compiled(self) -> CompiledArea:
        """Patient and pump limits reduced to floats for fast DERS checks."""
        from openinfusion.library.ders import compile_area

        return compile_area(self)


class DrugEntry(_Model):
    """One drug (and therapy) in one care area, with its concentrations and limits."""

    care_area: Identifier
    drug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9 ()\-/+.,]{0,79}$")]
    display_name: NonEmpty
    therapy: NonEmpty | None = None
    aliases: tuple[NonEmpty, ...] = ()
    infusion_type: InfusionType
    high_alert: bool = False
    concentrations: tuple[NonEmpty, ...] = ()
    dose_unit: NonEmpty
    limits: EntryLimits = EntryLimits()
    cumulative: CumulativeLimit | None = None
    pca: PcaLimits | None = None
    advisory: str | None = None
    second_check: bool = False
    source: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity within a library: (care area, drug, therapy)."""
        return (self.care_area, self.drug, self.therapy or "")

    @cached_property
    def compiled(self) -> CompiledEntry:
        """This entry reduced to floats for fast DERS checks (computed once)."""
        from openinfusion.library.ders import compile_entry

        return compile_entry(self)

    @property
    def label(self) -> str:
        therapy = f" ({self.therapy})" if self.therapy else ""
        return f"{self.display_name}{therapy}"

    @field_validator("concentrations")
    @classmethod
    def _concentrations_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            _as_value_error(parse_concentration, text, "concentrations")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unit = _as_value_error(parse_dose_unit, self.dose_unit, "dose_unit")
        self._check_kind(unit)
        concs = [parse_concentration(c) for c in self.concentrations]
        for conc in concs:
            if unit.dimension is not Dimension.VOLUME and conc.dimension is not unit.dimension:
                raise ValueError(
                    f"concentration {conc.text} is in {conc.dimension.value} but dose_unit "
                    f"{self.dose_unit} is in {unit.dimension.value}; units must be consistent"
                )
        strengths = [c.per_ml for c in concs]
        if len(set(strengths)) != len(strengths):
            raise ValueError("the same concentration is listed twice")
        if (
            unit.dimension is not Dimension.VOLUME
            and not concs
            and self.limits.concentration is None
        ):
            raise ValueError(
                "a drug entry needs at least one concentration or a concentration range"
            )
        for group in ("bolus", "loading"):
            limits: UnitLimits | None = getattr(self.limits, group)
            if limits is not None:
                bolus_unit = _as_value_error(parse_dose_unit, limits.unit, f"limits.{group}.unit")
                if bolus_unit.is_rate:
                    raise ValueError(f"limits.{group}.unit {limits.unit} must be a single dose")
                if bolus_unit.dimension is not unit.dimension:
                    raise ValueError(
                        f"limits.{group}.unit {limits.unit} is not in {unit.dimension.value} "
                        f"like dose_unit {self.dose_unit}"
                    )
        if self.limits.concentration is not None:
            self._check_concentration_range(unit)
        if self.cumulative is not None:
            cum = _as_value_error(parse_dose_unit, self.cumulative.unit, "cumulative.unit")
            if cum.is_rate or cum.dimension is not unit.dimension:
                raise ValueError(
                    f"cumulative.unit {self.cumulative.unit} must be a single amount in "
                    f"{unit.dimension.value} like dose_unit {self.dose_unit}"
                )
        if self.pca is not None:
            pca_unit = _as_value_error(parse_dose_unit, self.pca.dose_unit, "pca.dose_unit")
            if pca_unit.is_rate or pca_unit.dimension is not unit.dimension:
                raise ValueError(
                    f"pca.dose_unit {self.pca.dose_unit} must be a single dose in "
                    f"{unit.dimension.value} like dose_unit {self.dose_unit}"
                )
        if self.high_alert and not self._has_maximum():
            raise ValueError(
                "a high-alert drug must have a hard maximum for its dose (ISMP: no maximum "
                "dose is a known failure of drug libraries)"
            )
        return self

    def _check_kind(self, unit: DoseUnit) -> None:
        kind = self.infusion_type
        if (
            kind in (InfusionType.CONTINUOUS, InfusionType.FLUID, InfusionType.PCA)
            and not unit.is_rate
        ):
            raise ValueError(
                f"dose_unit {self.dose_unit} must be a dose over time for a {kind.value} entry"
            )
        if kind in (InfusionType.INTERMITTENT, InfusionType.BOLUS) and unit.is_rate:
            raise ValueError(
                f"dose_unit {self.dose_unit} must be a single dose for an {kind.value} entry"
                if kind is InfusionType.INTERMITTENT
                else f"dose_unit {self.dose_unit} must be a single dose for a bolus entry"
            )
        if kind is InfusionType.FLUID and unit.dimension is not Dimension.VOLUME:
            raise ValueError(f"a fluid entry is dosed in mL/h, not {self.dose_unit}")
        if kind is InfusionType.PCA and self.pca is None:
            raise ValueError("a pca entry needs a pca section (demand, lockout, max dose)")

    def _check_concentration_range(self, unit: DoseUnit) -> None:
        rng = self.limits.concentration
        assert rng is not None
        amount_text, _, per = rng.unit.partition("/")
        if per.strip().lower() != "ml":
            raise ValueError(f"limits.concentration.unit {rng.unit} must be amount/mL, e.g. mg/mL")
        amount = _as_value_error(parse_amount_unit, amount_text, "limits.concentration.unit")
        if amount.dimension is not unit.dimension:
            raise ValueError(
                f"limits.concentration.unit {rng.unit} is not in {unit.dimension.value} "
                f"like dose_unit {self.dose_unit}"
            )
        if rng.hard_max is None and rng.soft_max is None:
            raise ValueError("a concentration range needs a maximum")

    def _has_maximum(self) -> bool:
        if self.infusion_type is InfusionType.PCA:
            return self.pca is not None and self.pca.demand.has_max and self.pca.max_dose.has_max
        return self.limits.dose.has_max

    def parsed_concentrations(self) -> tuple[Concentration, ...]:
        return tuple(parse_concentration(c) for c in self.concentrations)


def _as_value_error(parse: Any, text: str, field: str) -> Any:
    """Run a units parser, turning its InputError into the ValueError pydantic reports."""
    try:
        return parse(text, field)
    except InputError as exc:
        raise ValueError(f"{field} {text!r}: {exc.rule}") from None


class Library(_Model):
    """A whole drug library: identity, version, care areas and entries."""

    format: Literal["openinfusion-library/1"] = "openinfusion-library/1"
    name: NonEmpty
    version: NonEmpty
    effective_date: date
    status: LibraryStatus = LibraryStatus.DRAFT
    notice: str | None = None
    sources: tuple[str, ...] = ()
    care_areas: tuple[CareArea, ...] = Field(min_length=1)
    entries: tuple[DrugEntry, ...] = ()

    @field_validator("version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError("version must be dotted numbers such as 2026.11.1 or 14")
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        ids = [area.id for area in self.care_areas]
        names = [area.name.casefold() for area in self.care_areas]
        for seen, what in ((ids, "id"), (names, "name")):
            dupes = sorted({x for x in seen if seen.count(x) > 1})
            if dupes:
                raise ValueError(f"care area {what} {dupes[0]!r} is defined twice")
        known = set(ids)
        keys: set[tuple[str, str, str]] = set()
        for index, entry in enumerate(self.entries):
            if entry.care_area not in known:
                raise ValueError(
                    f"entries[{index}] ({entry.drug}): care_area {entry.care_area!r} is not "
                    "defined in care_areas"
                )
            if entry.key in keys:
                therapy = f", therapy {entry.therapy!r}" if entry.therapy else ""
                raise ValueError(
                    f"entries[{index}]: drug {entry.drug!r}{therapy} appears twice in care "
                    f"area {entry.care_area!r}"
                )
            keys.add(entry.key)
        return self

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    def care_area(self, name: str) -> CareArea:
        """Find a care area by id or name (case-insensitive)."""
        key = name.strip().casefold()
        for area in self.care_areas:
            if key in (area.id.casefold(), area.name.casefold()):
                return area
        known = ", ".join(area.name for area in self.care_areas)
        raise InputError("care_area", name, f"is not in library {self.name} (known: {known})")

    def entries_for(
        self, care_area: str | None = None, drug: str | None = None, therapy: str | None = None
    ) -> list[DrugEntry]:
        """Entries matching a care area and a drug name, display name or alias."""
        area_id = self.care_area(care_area).id if care_area else None
        key = drug.strip().casefold() if drug else None
        out = []
        for entry in self.entries:
            if area_id is not None and entry.care_area != area_id:
                continue
            if key is not None and key not in _names(entry):
                continue
            if therapy is not None and (entry.therapy or "").casefold() != therapy.casefold():
                continue
            out.append(entry)
        return out

    def find(self, care_area: str, drug: str, therapy: str | None = None) -> DrugEntry | None:
        """The one entry for ``drug`` in ``care_area``; None when the drug is not there.

        Raises when several therapies match and none was named.
        """
        found = self.entries_for(care_area, drug, therapy)
        if len(found) > 1:
            options = ", ".join(repr(e.therapy) for e in found)
            raise InputError(
                "therapy",
                therapy or "",
                f"{drug} has several therapies in {care_area}; choose one of {options}",
            )
        return found[0] if found else None


def _names(entry: DrugEntry) -> set[str]:
    return {
        entry.drug.casefold(),
        entry.display_name.casefold(),
        *(alias.casefold() for alias in entry.aliases),
    }


def version_tuple(version: str) -> tuple[int, ...]:
    """'2026.11.1' -> (2026, 11, 1), for ordering library versions."""
    if not _VERSION.match(version):
        raise InputError("version", version, "must be dotted numbers such as 2026.11.1")
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


__all__ = [
    "BOUNDS",
    "FORMAT",
    "BasicInfusion",
    "Basis",
    "CareArea",
    "CumulativeLimit",
    "DrugEntry",
    "EntryLimits",
    "InfusionType",
    "Library",
    "LibraryStatus",
    "Limits",
    "PcaLimits",
    "Population",
    "UnitLimits",
    "version_tuple",
]
