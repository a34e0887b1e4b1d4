"""``openinfusion library ...``: validate, show, check (DERS), keys, sign, verify, diff."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from openinfusion.cli._common import (
    EXIT_HARD,
    EXIT_SOFT,
    JsonOption,
    console,
    handle_errors,
    print_json,
)
from openinfusion.errors import InputError
from openinfusion.library import (
    Level,
    Library,
    PcaProgram,
    Program,
    Verdict,
    check,
    check_basic_infusion,
    diff_libraries,
    load_library,
    package_bytes,
    sample_library,
    sign_library,
    verify_package_file,
)
from openinfusion.library.loading import MAX_FILE_BYTES
from openinfusion.library.signing import PACKAGE_FORMAT, VerifiedLibrary, unverified_library
from openinfusion.patient import Patient
from openinfusion.security import (
    PublicKey,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)
from openinfusion.units import format_number, parse_concentration, parse_dose, parse_quantity
from openinfusion.units.quantities import Kind

app = typer.Typer(
    help="Drug libraries: validate, show, DERS check, sign, verify, diff.", no_args_is_help=True
)

LibraryOpt = typer.Option(
    None,
    "--library",
    "-l",
    envvar="OPENINFUSION_LIBRARY",
    help="Library file (.yaml/.json) or signed package; default: the sample library.",
)


def _load_any(path: Path | None) -> Library:
    """A library file, or the library inside a signed package (signature not checked here:
    review only; ``library verify`` is the check pumps rely on)."""
    if path is None:
        return sample_library()
    if path.suffix.lower() == ".json":
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise InputError("library", str(path), f"is over the {MAX_FILE_BYTES}-byte limit")
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError("library", str(path), f"cannot be read ({exc.strerror})") from None
        if PACKAGE_FORMAT.encode() in raw:
            return unverified_library(raw)
    return load_library(path)


def _summary(lib: Library) -> dict[str, Any]:
    return {
        "name": lib.name,
        "version": lib.version,
        "effective_date": lib.effective_date.isoformat(),
        "status": lib.status.value,
        "notice": lib.notice,
        "care_areas": len(lib.care_areas),
        "entries": len(lib.entries),
        "drugs": len({e.drug for e in lib.entries}),
    }


@app.command("validate")
@handle_errors
def validate_cmd(
    file: Path = typer.Argument(..., help="Library file to validate."),
    json_out: bool = JsonOption,
) -> None:
    """Check a library file against every rule; any problem rejects the whole file (exit 2)."""
    lib = load_library(file)
    out = {"valid": True, **_summary(lib)}
    if json_out:
        print_json(out)
    else:
        console.print(
            f"[green]valid[/green]: {lib.name} {lib.version}, "
            f"{out['care_areas']} care areas, {out['entries']} entries, "
            f"{out['drugs']} drugs"
        )


@app.command("show")
@handle_errors
def show_cmd(
    care_area: str | None = typer.Option(None, "--care-area", "-a"),
    drug: str | None = typer.Option(None, "--drug", "-d"),
    therapy: str | None = typer.Option(None, "--therapy"),
    library: Path | None = LibraryOpt,
    json_out: bool = JsonOption,
) -> None:
    """Show a library, a care area's entries, or one drug's entry with all its limits.

    With --drug and a single match, the JSON is that entry itself (plus a "library" key).
    """
    lib = _load_any(library)
    entries = lib.entries_for(care_area, drug, therapy)
    if drug and not entries:
        where = f" in {lib.care_area(care_area).name}" if care_area else ""
        raise InputError("drug", drug, f"is not in library {lib.name}{where}")
    if json_out:
        if drug and len(entries) == 1:
            print_json({**entries[0].model_dump(mode="json"), "library": _summary(lib)})
            return
        areas = [lib.care_area(care_area)] if care_area else list(lib.care_areas)
        print_json(
            {
                "library": _summary(lib),
                "care_areas": [a.model_dump(mode="json") for a in areas],
                "entries": [e.model_dump(mode="json") for e in entries],
            }
        )
        return
    console.print(
        f"[bold]{lib.name}[/bold] {lib.version} (effective {lib.effective_date})"
        + (f" — {lib.notice}" if lib.notice else "")
    )
    table = Table(
        "care area",
        "drug",
        "type",
        "concentrations",
        "dose unit",
        "soft min",
        "soft max",
        "hard max",
        "alert",
    )
    for e in entries:
        d = e.limits.dose

        def n(v: float | None) -> str:
            return "" if v is None else format_number(v)

        table.add_row(
            e.care_area,
            e.label,
            e.infusion_type.value,
            ", ".join(e.concentrations),
            e.dose_unit,
            n(d.soft_min),
            n(d.soft_max),
            n(d.hard_max),
            "HIGH" if e.high_alert else "",
        )
    console.print(table)


def _check_program(
    dose: str | None,
    rate: str | None,
    concentration: str | None,
    bolus: str | None,
    loading: str | None,
    vtbi: str | None,
    duration: str | None,
    pca_demand: str | None,
    pca_lockout: str | None,
    pca_max: str | None,
    pca_window: str | None,
) -> Program:
    pca = None
    if pca_demand is not None:
        if pca_lockout is None:
            raise InputError("pca_lockout", "", "is required with --pca-demand")
        pca = PcaProgram(
            demand=parse_dose(pca_demand, "pca_demand"),
            lockout_min=parse_quantity(pca_lockout, Kind.DURATION, "pca_lockout"),
            max_dose=parse_dose(pca_max, "pca_max") if pca_max else None,
            window_h=(
                parse_quantity(pca_window, Kind.DURATION, "pca_window") / 60.0
                if pca_window
                else None
            ),
        )
    return Program(
        dose=parse_dose(dose) if dose else None,
        rate_ml_h=parse_quantity(rate, Kind.FLOW, "rate") if rate else None,
        concentration=parse_concentration(concentration) if concentration else None,
        bolus=parse_dose(bolus, "bolus") if bolus else None,
        loading=parse_dose(loading, "loading") if loading else None,
        vtbi_ml=parse_quantity(vtbi, Kind.VOLUME, "vtbi") if vtbi else None,
        duration_min=parse_quantity(duration, Kind.DURATION, "duration") if duration else None,
        pca=pca,
    )


@app.command("check")
@handle_errors
def check_cmd(
    care_area: str = typer.Option(..., "--care-area", "-a", help="e.g. 'Adult ICU'."),
    drug: str = typer.Option(..., "--drug", "-d", help="Generic name, display name or alias."),
    dose: str | None = typer.Option(None, "--dose", help="e.g. '5 mcg/kg/min' or '1 g'."),
    rate: str | None = typer.Option(None, "--rate", help="Pump rate, e.g. '13 mL/h'."),
    concentration: str | None = typer.Option(None, "--concentration", "-c"),
    weight: str | None = typer.Option(None, "--weight"),
    height: str | None = typer.Option(None, "--height"),
    age: str | None = typer.Option(None, "--age"),
    bolus: str | None = typer.Option(None, "--bolus", help="Bolus dose, e.g. '80 units/kg'."),
    loading: str | None = typer.Option(None, "--loading", help="Loading dose."),
    vtbi: str | None = typer.Option(None, "--vtbi", help="Volume to be infused, e.g. '250 mL'."),
    duration: str | None = typer.Option(None, "--duration", help="e.g. '2 h'."),
    pca_demand: str | None = typer.Option(None, "--pca-demand", help="PCA demand dose."),
    pca_lockout: str | None = typer.Option(None, "--pca-lockout", help="e.g. '10 min'."),
    pca_max: str | None = typer.Option(None, "--pca-max", help="PCA max dose per window."),
    pca_window: str | None = typer.Option(None, "--pca-window", help="e.g. '4 h'."),
    therapy: str | None = typer.Option(None, "--therapy"),
    override_reason: str | None = typer.Option(
        None, "--override-reason", help="Reason to proceed past soft limits."
    ),
    library: Path | None = LibraryOpt,
    json_out: bool = JsonOption,
) -> None:
    """DERS check of a program. Exit 0 ok (or soft with a reason), 3 soft, 4 hard.

    A drug not in the library is a basic infusion (verdict "unknown", exit 3: the
    clinician must confirm running without library protection; 4 where not allowed).
    """
    lib = _load_any(library)
    area = lib.care_area(care_area)
    patient = Patient.from_text(weight=weight, height=height, age=age)
    program = _check_program(
        dose,
        rate,
        concentration,
        bolus,
        loading,
        vtbi,
        duration,
        pca_demand,
        pca_lockout,
        pca_max,
        pca_window,
    )
    entry = lib.find(area.id, drug, therapy)
    if entry is None:
        _report_unknown(drug, area.name, program, lib, patient, json_out)
        return
    verdict = check(program, entry, patient, area)
    _report(verdict, override_reason, json_out, {"name": lib.name, "version": lib.version})


def _report(
    verdict: Verdict, override_reason: str | None, json_out: bool, library: dict[str, str]
) -> None:
    reason = (override_reason or "").strip()
    accepted = verdict.level is Level.OK or (verdict.level is Level.SOFT and bool(reason))
    out = {
        **verdict.as_dict(),
        "accepted": accepted,
        "override": {"reason": reason} if accepted and verdict.level is Level.SOFT else None,
        "library": library,
    }
    code = 0 if accepted else (EXIT_SOFT if verdict.level is Level.SOFT else EXIT_HARD)
    if json_out:
        print_json(out)
    else:
        colour = {Level.OK: "green", Level.SOFT: "yellow", Level.HARD: "red"}[verdict.level]
        console.print(
            f"[{colour}]{verdict.label.upper()}[/{colour}] {verdict.drug} in {verdict.care_area}"
        )
        for key, value in verdict.computed.items():
            console.print(f"  computed {key}: {format_number(round(value, 4))}")
        for message in verdict.messages():
            console.print(f"  - {message}", markup=False)
        if verdict.advisory:
            console.print(f"  advisory: {verdict.advisory}", markup=False)
        if verdict.level is Level.SOFT:
            console.print(
                "  override accepted: " + reason
                if accepted
                else "  soft limit: re-run with --override-reason to proceed"
            )
        elif verdict.level is Level.HARD:
            console.print("  blocked by a hard limit: reprogram")
    if code:
        raise typer.Exit(code)


def _report_unknown(
    drug: str, area: str, program: Program, lib: Library, patient: Patient, json_out: bool
) -> None:
    care_area = lib.care_area(area)
    if program.rate_ml_h is not None:
        basic = check_basic_infusion(program.rate_ml_h, care_area, patient, program.vtbi_ml)
        findings = [f.as_dict() for f in basic.findings]
        code = EXIT_HARD if basic.level is Level.HARD else EXIT_SOFT
    else:
        findings = [
            {
                "parameter": "drug",
                "value": None,
                "unit": "",
                "level": "soft",
                "bound": None,
                "limit": None,
                "message": f"{drug} is not in the library for {area}: only a basic "
                "infusion in mL/h is possible",
            }
        ]
        code = EXIT_HARD if not care_area.basic_infusion.allowed else EXIT_SOFT
    out = {
        "verdict": "unknown",
        "drug": drug,
        "care_area": care_area.name,
        "findings": findings,
        "computed": {},
        "accepted": False,
        "override": None,
        "advisory": care_area.basic_infusion.advisory,
        "library": {"name": lib.name, "version": lib.version},
    }
    if json_out:
        print_json(out)
    else:
        console.print(
            f"[yellow]UNKNOWN[/yellow] {drug} is not in {lib.name} for "
            f"{care_area.name}: basic infusion only. {care_area.basic_infusion.advisory}"
        )
        for f in findings:
            if f["level"] != "ok":
                console.print(f"  - {f['message']}", markup=False)
    raise typer.Exit(code)


@app.command("keygen")
@handle_errors
def keygen_cmd(
    out: Path = typer.Option(Path("."), "--out", "-o", help="Directory for the key files."),
    name: str = typer.Option("pharmacy", "--name", help="File stem: NAME.key and NAME.pub."),
    passphrase_env: str | None = typer.Option(
        None,
        "--passphrase-env",
        help="Encrypt the private key with the passphrase in this environment variable.",
    ),
    json_out: bool = JsonOption,
) -> None:
    """Create an Ed25519 signing key pair for a pharmacist (private key file mode 600)."""
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise InputError("out", str(path), "already exists; keys are never overwritten")
    passphrase = _passphrase(passphrase_env)
    key = generate_private_key()
    save_private_key(key, private_path, passphrase)
    save_public_key(key.public_key(), public_path)
    result = {
        "key_id": key_id(key),
        "private_key": str(private_path),
        "public_key": str(public_path),
        "encrypted": passphrase is not None,
    }
    if json_out:
        print_json(result)
    else:
        console.print(
            f"key {result['key_id']}: private {private_path} (keep secret), "
            f"public {public_path} (give to pumps and the server)"
        )


def _passphrase(env: str | None) -> bytes | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise InputError("passphrase_env", env, "names an empty or unset environment variable")
    return value.encode("utf-8")


@app.command("sign")
@handle_errors
def sign_cmd(
    file: Path = typer.Argument(..., help="Library file to sign (validated first)."),
    key: Path = typer.Option(..., "--key", "-k", help="Pharmacist's private key (PEM)."),
    signer: str = typer.Option(..., "--signer", help="Name of the signing pharmacist."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Package file to write."),
    passphrase_env: str | None = typer.Option(None, "--passphrase-env"),
    json_out: bool = JsonOption,
) -> None:
    """Sign a validated library into a package that pumps verify before activating."""
    lib = load_library(file)
    private = load_private_key(key, _passphrase(passphrase_env))
    package = sign_library(lib, private, signer, datetime.now(UTC))
    target = out or file.with_name(f"{file.stem}-{lib.version}.signed.json")
    target.write_bytes(package_bytes(package))
    result = {
        "package": str(target),
        "name": lib.name,
        "version": lib.version,
        "key_id": package["signature"]["key_id"],
        "sha256": package["signed"]["sha256"],
    }
    if json_out:
        print_json(result)
    else:
        console.print(f"signed {lib.name} {lib.version} with key {result['key_id']} -> {target}")


def _trusted_keys(paths: list[Path]) -> list[PublicKey]:
    keys: list[PublicKey] = []
    for path in paths:
        files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        keys.extend(load_public_key(p) for p in files)
    if not keys:
        raise InputError("trusted_key", ", ".join(map(str, paths)), "holds no public keys")
    return keys


@app.command("verify")
@handle_errors
def verify_cmd(
    package: Path = typer.Argument(..., help="Signed library package."),
    trusted_key: list[Path] = typer.Option(
        ..., "--trusted-key", "-t", help="Trusted pharmacy public key, or a directory of .pub."
    ),
    installed: Path | None = typer.Option(
        None,
        "--installed",
        help="The package now active: refuse rollback and same-version changes.",
    ),
    today: str | None = typer.Option(
        None, "--today", help="Date for the effective-date check (YYYY-MM-DD); default today."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Verify a signed library: signature, trusted key, content, version order, date."""
    keys = _trusted_keys(trusted_key)
    current: VerifiedLibrary | None = None
    if installed is not None:
        current = verify_package_file(installed, keys)
    when = _parse_date(today) if today else datetime.now(UTC).date()
    verified = verify_package_file(package, keys, installed=current, today=when)
    result = {"verified": True, **verified.as_dict()}
    if json_out:
        print_json(result)
    else:
        console.print(
            f"[green]verified[/green]: {verified.library.name} "
            f"{verified.library.version}, signed by {verified.signer} "
            f"(key {verified.key_id}) at {verified.signed_at}"
        )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError("today", text, "must be a date YYYY-MM-DD") from None


@app.command("diff")
@handle_errors
def diff_cmd(
    old: Path = typer.Argument(..., help="Older library or package."),
    new: Path = typer.Argument(..., help="Newer library or package."),
    json_out: bool = JsonOption,
) -> None:
    """Added, removed and changed care areas, entries and limits between two versions."""
    result = diff_libraries(_load_any(old), _load_any(new))
    if json_out:
        print_json(result.as_dict())
        return
    if result.is_empty:
        console.print(f"no differences between {result.old_version} and {result.new_version}")
        return
    console.print(f"[bold]{result.old_version} -> {result.new_version}[/bold]")
    for change in result.header:
        console.print(f"  library {change.path}: {change.old!r} -> {change.new!r}", markup=False)
    for label, items in (("care area", result.care_areas_added), ("entry", result.entries_added)):
        for item in items:
            console.print(f"  [green]+ {label} {item}[/green]")
    for label, items in (
        ("care area", result.care_areas_removed),
        ("entry", result.entries_removed),
    ):
        for item in items:
            console.print(f"  [red]- {label} {item}[/red]")
    for group in (result.care_areas_changed, result.entries_changed):
        for changed in group:
            console.print(f"  [yellow]~ {changed.key}[/yellow]")
            for change in changed.changes:
                console.print(
                    f"      {change.path}: {change.old!r} -> {change.new!r}", markup=False
                )
