"""Signed drug library packages: a pharmacist signs, pumps verify before activating.

Package layout (JSON)::

    {"format": "openinfusion-signed-library/1",
     "signed": {"library": {...}, "sha256": "...", "signer": "...", "key_id": "...",
                "signed_at": "2026-11-21T10:00:00+00:00"},
     "signature": {"alg": "Ed25519", "key_id": "...", "value": "<base64>"}}

The signature covers a domain tag followed by the canonical JSON of ``signed`` (sorted
keys, no spaces, UTF-8). Verification recomputes those bytes from what it parsed and
loads the library from that same parsed object, so what was verified is exactly what is
activated: there is no second copy to splice, and re-encoding tricks (5 -> 5.0, key
reordering with duplicates) either change the bytes or are refused by the strict parser.
Rollback protection compares dotted versions with the installed package (RELIABILITY B-09,
C-03).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openinfusion.errors import InputError
from openinfusion.library.loading import MAX_FILE_BYTES, library_from_data, parse_json_strict
from openinfusion.library.schema import Library, version_tuple
from openinfusion.security import (
    PrivateKey,
    PublicKey,
    b64decode,
    b64encode,
    canonical_json,
    key_id,
    sign,
    verify,
)

PACKAGE_FORMAT = "openinfusion-signed-library/1"
# Domain separation: a library signature can never be mistaken for any other signed object.
DOMAIN = b"openinfusion drug library package v1\x00"


class SignatureRejected(InputError):
    """A package failed verification (tampered, unsigned, untrusted key, rollback)."""


@dataclass(frozen=True, slots=True)
class VerifiedLibrary:
    """A library whose signature checked out, with who signed it and its content hash."""

    library: Library
    key_id: str
    signer: str
    signed_at: str
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.library.name,
            "version": self.library.version,
            "effective_date": self.library.effective_date.isoformat(),
            "key_id": self.key_id,
            "signer": self.signer,
            "signed_at": self.signed_at,
            "sha256": self.sha256,
            "entries": len(self.library.entries),
        }


def library_sha256(library: Library) -> str:
    """SHA-256 of the library's canonical JSON: its identity for drift checks."""
    return hashlib.sha256(canonical_json(library.model_dump(mode="json"))).hexdigest()


def sign_library(
    library: Library, key: PrivateKey, signer: str, signed_at: datetime
) -> dict[str, Any]:
    """Build a signed package for a (validated) library."""
    if not signer.strip():
        raise InputError("signer", signer, "must name the pharmacist who signs")
    if signed_at.tzinfo is None:
        raise InputError("signed_at", signed_at.isoformat(), "must carry a time zone")
    kid = key_id(key)
    body = {
        "library": library.model_dump(mode="json"),
        "sha256": library_sha256(library),
        "signer": signer.strip(),
        "key_id": kid,
        "signed_at": signed_at.isoformat(),
    }
    signature = sign(key, DOMAIN + canonical_json(body))
    return {
        "format": PACKAGE_FORMAT,
        "signed": body,
        "signature": {"alg": "Ed25519", "key_id": kid, "value": b64encode(signature)},
    }


def package_bytes(package: Mapping[str, Any]) -> bytes:
    """Indented JSON for a package file, readable for review; whitespace is not signed."""
    return (json.dumps(package, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _reject(field: str, value: object, rule: str) -> SignatureRejected:
    return SignatureRejected(field, value, rule)


def parse_package(raw: bytes) -> dict[str, Any]:
    """Strictly parse package bytes (size, UTF-8, JSON, layout); no signature check."""
    if len(raw) > MAX_FILE_BYTES:
        raise _reject("package", f"{len(raw)} bytes", f"over the {MAX_FILE_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _reject("package", "", "is not UTF-8 text") from None
    data = parse_json_strict(text, "package")
    if not isinstance(data, dict) or data.get("format") != PACKAGE_FORMAT:
        raise _reject(
            "package.format",
            data.get("format") if isinstance(data, dict) else "",
            f"is not a signed library package ({PACKAGE_FORMAT})",
        )
    extra = set(data) - {"format", "signed", "signature"}
    if extra:
        raise _reject("package", ", ".join(sorted(extra)), "unknown top-level fields")
    if not isinstance(data.get("signed"), dict):
        raise _reject("package.signed", "", "is missing or not an object (no library inside)")
    return data


def unverified_library(raw: bytes) -> Library:
    """The library inside a package, validated but with its signature NOT checked.

    For review (show, diff) only; pumps activate only what :func:`verify_package` returns.
    """
    return library_from_data(parse_package(raw)["signed"].get("library"))


def verify_package(
    raw: bytes,
    trusted: Iterable[PublicKey],
    *,
    installed: VerifiedLibrary | None = None,
    today: date | None = None,
) -> VerifiedLibrary:
    """Verify a package's bytes against trusted public keys; return the library or raise.

    Rejects: anything not a package, a stripped or malformed signature, a key not in
    ``trusted``, any change to the signed content, a version older than ``installed``
    (rollback) or equal to it with other content, and an effective date after ``today``.
    """
    data = parse_package(raw)
    signature = data.get("signature")
    body = data["signed"]
    if not isinstance(signature, dict) or not signature.get("value"):
        raise _reject("package.signature", "", "is missing: unsigned libraries are refused")
    if signature.get("alg") != "Ed25519":
        raise _reject("package.signature.alg", signature.get("alg"), "must be Ed25519")
    keys = {key_id(k): k for k in trusted}
    kid = signature.get("key_id")
    if not isinstance(kid, str) or kid not in keys:
        raise _reject("package.signature.key_id", kid, "is not a trusted pharmacy signing key")
    sig = b64decode(signature["value"], "package.signature.value")
    if b64encode(sig) != signature["value"]:
        # One encoding per signature: base64 padding bits are ignored by decoders, so a
        # non-canonical spelling would make several package files verify as one.
        raise _reject("package.signature.value", "", "is not canonical base64")
    if not verify(keys[kid], sig, DOMAIN + canonical_json(body)):
        raise _reject(
            "package.signature",
            kid,
            "does not match the content: the package was changed after signing",
        )
    if body.get("key_id") != kid:
        raise _reject(
            "package.signed.key_id", body.get("key_id"), "differs from the signature's key id"
        )
    library = library_from_data(body.get("library"))
    digest = library_sha256(library)
    if body.get("sha256") != digest:
        raise _reject(
            "package.signed.sha256", body.get("sha256"), "does not match the library content"
        )
    verified = VerifiedLibrary(
        library=library,
        key_id=kid,
        signer=str(body.get("signer", "")),
        signed_at=str(body.get("signed_at", "")),
        sha256=digest,
    )
    if installed is not None:
        check_upgrade(installed, verified)
    if today is not None and library.effective_date > today:
        raise _reject(
            "effective_date",
            library.effective_date.isoformat(),
            f"is after today ({today.isoformat()}): not yet in effect",
        )
    return verified


def check_upgrade(installed: VerifiedLibrary, new: VerifiedLibrary) -> None:
    """Refuse a rollback, or the same version number with different content."""
    old_v, new_v = version_tuple(installed.library.version), version_tuple(new.library.version)
    if installed.library.name != new.library.name:
        raise _reject(
            "name",
            new.library.name,
            f"differs from the installed library {installed.library.name!r}",
        )
    if new_v < old_v:
        raise _reject(
            "version",
            new.library.version,
            f"is older than the installed {installed.library.version} (rollback refused)",
        )
    if new_v == old_v and new.sha256 != installed.sha256:
        raise _reject(
            "version",
            new.library.version,
            "is the installed version number with different content (refused)",
        )


def verify_package_file(
    path: str | Path,
    trusted: Iterable[PublicKey],
    *,
    installed: VerifiedLibrary | None = None,
    today: date | None = None,
) -> VerifiedLibrary:
    """Read a package file and verify it (see :func:`verify_package`)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError("package", str(path), f"cannot be read ({exc.strerror})") from None
    return verify_package(raw, trusted, installed=installed, today=today)
