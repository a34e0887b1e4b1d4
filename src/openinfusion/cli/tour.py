"""``openinfusion tour``: a short guided run through dose math, DERS and signed libraries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from openinfusion.cli._common import console, print_json
from openinfusion.library import (
    Program,
    SignatureRejected,
    check,
    diff_libraries,
    package_bytes,
    sample_library,
    sign_library,
    verify_package,
)
from openinfusion.library.loading import library_from_data
from openinfusion.patient import Patient
from openinfusion.security import generate_private_key
from openinfusion.units import (
    dose_to_rate_ml_h,
    format_number,
    parse_concentration,
    parse_dose,
)


def run_tour(json_out: bool) -> None:
    """Compute a drip rate, run three DERS checks, sign and tamper with a library."""
    lib = sample_library()
    area = lib.care_area("Adult ICU")
    patient = Patient(weight_kg=70.0, height_cm=170.0)
    steps: list[dict[str, Any]] = []

    conc = parse_concentration("400 mg/250 mL")
    dose = parse_dose("5 mcg/kg/min")
    rate = dose_to_rate_ml_h(dose, conc, patient.weight_kg)
    steps.append(
        {
            "step": "dose to rate",
            "dose": str(dose),
            "concentration": conc.text,
            "weight_kg": patient.weight_kg,
            "rate_ml_h": rate,
        }
    )

    entry = lib.find(area.id, "dopamine")
    assert entry is not None
    for text, rate_ml_h in (
        ("5 mcg/kg/min", None),
        ("25 mcg/kg/min", None),
        ("5 mcg/kg/min", 131.25),
    ):
        verdict = check(
            Program(dose=parse_dose(text), concentration=conc, rate_ml_h=rate_ml_h),
            entry,
            patient,
            area,
        )
        steps.append(
            {
                "step": "DERS check",
                "drug": verdict.drug,
                "dose": text,
                "rate_ml_h": rate_ml_h,
                "verdict": verdict.label,
                "messages": verdict.messages(),
            }
        )

    key = generate_private_key()
    package = sign_library(lib, key, "Tour Pharmacist", datetime.now(UTC))
    raw = package_bytes(package)
    verified = verify_package(raw, [key.public_key()])
    steps.append(
        {
            "step": "sign and verify",
            "version": verified.library.version,
            "key_id": verified.key_id,
            "sha256": verified.sha256[:16],
        }
    )
    tampered = raw.replace(b'"hard_max": 50', b'"hard_max": 500', 1)
    try:
        verify_package(tampered, [key.public_key()])
        outcome = "accepted (unexpected)"
    except SignatureRejected as exc:
        outcome = f"rejected: {exc.rule}"
    steps.append({"step": "tampered package", "outcome": outcome})

    data = lib.model_dump(mode="json")
    data["version"] = "9999.0"
    first = data["entries"][0]
    if first["limits"]["dose"]["hard_max"] is not None:
        first["limits"]["dose"]["hard_max"] = first["limits"]["dose"]["hard_max"] * 2
    changed = diff_libraries(lib, library_from_data(data))
    steps.append(
        {
            "step": "diff",
            "changes": [
                f"{item.key}: {c.path} {c.old} -> {c.new}"
                for item in changed.entries_changed
                for c in item.changes
            ],
        }
    )

    if json_out:
        print_json({"library": {"name": lib.name, "version": lib.version}, "steps": steps})
        return
    console.print(
        f"[bold]openinfusion tour[/bold] — library {lib.name} {lib.version} ({lib.notice})\n"
    )
    for step in steps:
        name = step.pop("step")
        console.print(f"[bold cyan]{name}[/bold cyan]")
        for key_name, value in step.items():
            shown = format_number(round(value, 4)) if isinstance(value, float) else value
            console.print(f"  {key_name}: {shown}", markup=False)
    console.print("\nNext: openinfusion --help, openinfusion library check --help")
