"""RELIABILITY C-03: a tampered drug library package is refused, whoever relayed it.

Every test names C-03. Verification must reject any change to the signed content, any key
the pumps do not trust (a wrong, retired or server key), a stripped or malformed signature,
content spliced between two genuine packages, and re-encodings that change the canonical
bytes. Only changes that leave the signed content identical may verify, and then to the
identical library.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.library import (
    Library,
    SignatureRejected,
    VerifiedLibrary,
    package_bytes,
    sign_library,
    verify_package,
    verify_package_file,
)
from openinfusion.library.loading import library_from_data
from openinfusion.library.signing import DOMAIN
from openinfusion.security import (
    PrivateKey,
    b64encode,
    canonical_json,
    generate_private_key,
    key_id,
    load_private_key,
    save_private_key,
    save_public_key,
    sign,
)

from ..conftest import mini_data

Package = dict[str, Any]

PHARMACY = generate_private_key()
TRUSTED = [PHARMACY.public_key()]
SIGNED_AT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
LIB_A = library_from_data(mini_data())


def _lib_b() -> Library:
    data = mini_data()
    data["version"] = "2026.2.0"
    data["entries"][0]["limits"]["dose"]["hard_max"] = 500  # a dangerous change
    return library_from_data(data)


LIB_B = _lib_b()
PKG_A = sign_library(LIB_A, PHARMACY, "A. Pharmacist", SIGNED_AT)
PKG_B = sign_library(LIB_B, PHARMACY, "A. Pharmacist", SIGNED_AT)
RAW_A = package_bytes(PKG_A)
GOOD_A = verify_package(RAW_A, TRUSTED)


def _pkg(package: Package = PKG_A) -> Package:
    return copy.deepcopy(package)


def _raw(package: Package) -> bytes:
    return package_bytes(package)


def _rejected(raw: bytes, trusted: Any = None) -> InputError:
    """Verification of ``raw`` must raise an InputError (SignatureRejected or parse error)."""
    with pytest.raises(InputError) as info:
        verify_package(raw, TRUSTED if trusted is None else trusted)
    assert info.value.exit_code == 2
    return info.value


def _resign(package: Package, key: PrivateKey, claimed_kid: str | None = None) -> Package:
    """Re-sign ``package``'s body with ``key`` (as an attacker would), optionally lying
    about the key id in both the body and the signature block."""
    out = _pkg(package)
    kid = claimed_kid or key_id(key)
    out["signed"]["key_id"] = kid
    signature = sign(key, DOMAIN + canonical_json(out["signed"]))
    out["signature"] = {"alg": "Ed25519", "key_id": kid, "value": b64encode(signature)}
    return out


def _dopamine_hard_max(package: Package, value: Any) -> Package:
    out = _pkg(package)
    out["signed"]["library"]["entries"][0]["limits"]["dose"]["hard_max"] = value
    return out


def _same_as_a(verified: VerifiedLibrary) -> None:
    assert verified.library == LIB_A
    assert verified.sha256 == GOOD_A.sha256
    assert (verified.key_id, verified.signer, verified.signed_at) == (
        GOOD_A.key_id,
        GOOD_A.signer,
        GOOD_A.signed_at,
    )


def test_c03_genuine_package_verifies() -> None:
    """C-03 control: the untouched package verifies to the library that was signed."""
    _same_as_a(verify_package(RAW_A, TRUSTED))
    assert verify_package(_raw(PKG_B), TRUSTED).library.entries[0].limits.dose.hard_max == 500


# ---- bit flips --------------------------------------------------------------------------------


def _flip(raw: bytes, position: int, bit: int) -> bytes:
    out = bytearray(raw)
    out[position] ^= 1 << bit
    return bytes(out)


def _rejected_or_identical(raw: bytes) -> None:
    try:
        verified = verify_package(raw, TRUSTED)
    except InputError:
        return
    _same_as_a(verified)


def test_c03_bit_flip_at_every_byte_rejected_or_identical() -> None:
    """C-03: one bit flipped at every byte position (bit = position mod 8): rejected, or
    (whitespace / ignored encoding bits) the identical library; never another library."""
    accepted = 0
    for position in range(len(RAW_A)):
        flipped = _flip(RAW_A, position, position % 8)
        try:
            verified = verify_package(flipped, TRUSTED)
        except InputError:
            continue
        accepted += 1
        _same_as_a(verified)
    assert accepted < len(RAW_A) // 100  # almost every flip must be caught


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(RAW_A) - 1), bit=st.integers(0, 7))
def test_c03_property_bit_flip_rejected_or_identical(position: int, bit: int) -> None:
    """C-03 property: any single bit flip is rejected or verifies to the identical library."""
    _rejected_or_identical(_flip(RAW_A, position, bit))


def _offsets(needle: bytes) -> Iterator[int]:
    start = RAW_A.find(needle)
    assert start >= 0, needle
    yield from range(start, start + len(needle))


@pytest.mark.parametrize("needle", [b'"hard_max": 50.0', b'"version": "2026.1.0"', b"mcg/kg/min"])
def test_c03_bit_flips_in_clinical_fields_all_rejected(needle: bytes) -> None:
    """C-03: every one of the 8 bit flips in every byte of a limit, version or unit is refused."""
    for position in _offsets(needle):
        for bit in range(8):
            _rejected(_flip(RAW_A, position, bit))


def test_c03_whitespace_changes_verify_to_identical_library() -> None:
    """C-03: whitespace is not signed: compact or re-indented JSON verifies to the same library."""
    compact = json.dumps(PKG_A, separators=(",", ":"), ensure_ascii=False).encode()
    indented = json.dumps(PKG_A, indent=4).encode()
    crlf = RAW_A.replace(b"\n", b"\r\n")
    for raw in (compact, indented, crlf):
        _same_as_a(verify_package(raw, TRUSTED))


# ---- edited content, wrong / old / server keys -----------------------------------------------


def test_c03_field_edited_without_resigning_rejected() -> None:
    """C-03: dopamine hard_max 50 -> 500 in the package bytes is refused."""
    raw = RAW_A.replace(b'"hard_max": 50.0', b'"hard_max": 500.0', 1)
    assert raw != RAW_A
    error = _rejected(raw)
    assert isinstance(error, SignatureRejected)
    assert "changed after signing" in error.rule


def test_c03_edited_and_resigned_with_wrong_key_rejected() -> None:
    """C-03: an attacker edits a limit and re-signs with their own key: key not trusted."""
    forged = _resign(_dopamine_hard_max(PKG_A, 500.0), generate_private_key())
    error = _rejected(_raw(forged))
    assert error.field == "package.signature.key_id"
    assert "not a trusted" in error.rule


def test_c03_resigned_with_wrong_key_claiming_trusted_key_id_rejected() -> None:
    """C-03: the forger writes the pharmacy's key id on a signature made with another key."""
    forged = _resign(
        _dopamine_hard_max(PKG_A, 500.0), generate_private_key(), claimed_kid=key_id(PHARMACY)
    )
    error = _rejected(_raw(forged))
    assert error.field == "package.signature"
    assert "changed after signing" in error.rule


def test_c03_old_key_no_longer_trusted_rejected() -> None:
    """C-03: after key rotation a package signed with the retired key is refused."""
    old, new = generate_private_key(), generate_private_key()
    raw = _raw(sign_library(LIB_A, old, "A. Pharmacist", SIGNED_AT))
    assert verify_package(raw, [old.public_key()]).library == LIB_A  # it was valid once
    error = _rejected(raw, trusted=[new.public_key()])
    assert error.field == "package.signature.key_id"


def test_c03_server_key_cannot_sign_libraries() -> None:
    """C-03: a compromised distribution server signs with its own (non-pharmacy) key: refused."""
    server = generate_private_key()
    forged = _raw(sign_library(LIB_B, server, "distribution-server", SIGNED_AT))
    _rejected(forged)
    # Trusting several pharmacists still does not make the server's key acceptable.
    _rejected(forged, trusted=[PHARMACY.public_key(), generate_private_key().public_key()])


# ---- stripped or malformed signatures ---------------------------------------------------------


@pytest.mark.parametrize(
    "strip",
    [
        lambda p: p.pop("signature"),
        lambda p: p.update(signature=None),
        lambda p: p.update(signature={}),
        lambda p: p["signature"].pop("value"),
        lambda p: p["signature"].update(value=""),
        lambda p: p["signature"].update(value=None),
    ],
    ids=["removed", "null", "empty", "no-value", "empty-value", "null-value"],
)
def test_c03_signature_stripped_rejected(strip: Any) -> None:
    """C-03: an unsigned package is refused (unsigned libraries are never activated)."""
    package = _pkg()
    strip(package)
    error = _rejected(_raw(package))
    assert error.field.startswith("package.signature")


@pytest.mark.parametrize(
    "value",
    [
        "!!!not base64!!!",
        "fHzF ssqT",
        b64encode(b"\x00" * 32),
        b64encode(b"\x00" * 63),
        b64encode(b"\x00" * 64),
        b64encode(b"\x00" * 65),
        b64encode(os.urandom(64)),
        base64.urlsafe_b64encode(b"\xfb\xff" * 32).decode(),
        12345,
        ["AAAA"],
        {"value": "AAAA"},
        "é" * 88,
    ],
    ids=lambda v: repr(v)[:24],
)
def test_c03_signature_value_garbage_rejected(value: Any) -> None:
    """C-03: garbage, wrong-length or random signature values are refused cleanly."""
    package = _pkg()
    package["signature"]["value"] = value
    error = _rejected(_raw(package))
    assert error.field.startswith("package.signature")


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "ed25519", "EdDSA", "", None, 1])
def test_c03_signature_alg_changed_rejected(alg: Any) -> None:
    """C-03: only Ed25519 is accepted; 'none' and look-alikes are refused."""
    package = _pkg()
    package["signature"]["alg"] = alg
    error = _rejected(_raw(package))
    assert error.field in ("package.signature.alg", "package.signature")


@pytest.mark.parametrize(
    "kid", [None, "", 5, True, "0" * 16, ["3c41b0f3f3707009"], {"id": "x"}], ids=repr
)
def test_c03_signature_key_id_garbage_rejected(kid: Any) -> None:
    """C-03: a missing, wrong or wrongly typed signature key_id is refused cleanly."""
    package = _pkg()
    package["signature"]["key_id"] = kid
    error = _rejected(_raw(package))
    assert error.field == "package.signature.key_id"


def test_c03_signature_alg_missing_rejected() -> None:
    """C-03: a signature block without an alg is refused."""
    package = _pkg()
    del package["signature"]["alg"]
    assert _rejected(_raw(package)).field == "package.signature.alg"


# ---- splicing between two genuine packages ----------------------------------------------------


@pytest.mark.parametrize(
    "splice",
    [
        lambda a, b: a.update(signature=b["signature"]),
        lambda a, b: a.update(signed=b["signed"]) or a.update(signature=PKG_A["signature"]),
        lambda a, b: a["signed"].update(library=b["signed"]["library"]),
        lambda a, b: a["signed"]["library"].update(entries=b["signed"]["library"]["entries"]),
        lambda a, b: a["signed"]["library"]["entries"].__setitem__(
            0, b["signed"]["library"]["entries"][0]
        ),
        lambda a, b: a["signed"].update(sha256=b["signed"]["sha256"]),
        lambda a, b: a["signed"]["library"].update(version=b["signed"]["library"]["version"]),
    ],
    ids=[
        "B-signature-on-A",
        "B-body-with-A-signature",
        "B-library-in-A",
        "B-entries-in-A",
        "B-entry-0-in-A",
        "B-hash-in-A",
        "B-version-in-A",
    ],
)
def test_c03_sections_spliced_between_signed_packages_rejected(splice: Any) -> None:
    """C-03: mixing parts of two genuinely signed packages never verifies."""
    spliced = _pkg(PKG_A)
    splice(spliced, _pkg(PKG_B))
    error = _rejected(_raw(spliced))
    assert isinstance(error, SignatureRejected)


def test_c03_body_key_id_must_match_signature_key_id() -> None:
    """C-03: a body naming one trusted key but signed by another trusted key is refused."""
    other = generate_private_key()
    package = _pkg()
    package["signed"]["key_id"] = key_id(other)
    signature = sign(PHARMACY, DOMAIN + canonical_json(package["signed"]))
    package["signature"] = {
        "alg": "Ed25519",
        "key_id": key_id(PHARMACY),
        "value": b64encode(signature),
    }
    error = _rejected(_raw(package), trusted=[PHARMACY.public_key(), other.public_key()])
    assert error.field == "package.signed.key_id"


def test_c03_signed_hash_must_match_library() -> None:
    """C-03: a genuine signature over a body whose sha256 does not match its library is refused."""
    package = _pkg()
    package["signed"]["sha256"] = PKG_B["signed"]["sha256"]
    error = _rejected(_raw(_resign(package, PHARMACY)))
    assert error.field == "package.signed.sha256"


def test_c03_signed_but_invalid_library_rejected() -> None:
    """C-03: a valid signature does not make an invalid library (hard_min > soft_min) loadable."""
    package = _pkg()
    package["signed"]["library"]["entries"][0]["limits"]["dose"]["hard_min"] = 10.0
    with pytest.raises(InputError) as info:
        verify_package(_raw(_resign(package, PHARMACY)), TRUSTED)
    assert "entries[0].limits.dose" in info.value.field


def test_c03_signature_from_another_domain_rejected() -> None:
    """C-03: a pharmacy signature over the bare body (no library domain tag) is refused."""
    package = _pkg()
    package["signature"]["value"] = b64encode(sign(PHARMACY, canonical_json(package["signed"])))
    _rejected(_raw(package))


# ---- canonicalisation attacks ----------------------------------------------------------------


def test_c03_number_reencoded_float_to_int_rejected() -> None:
    """C-03: 50.0 -> 50 in the signed body changes the canonical bytes: refused."""
    error = _rejected(_raw(_dopamine_hard_max(PKG_A, 50)))
    assert error.field == "package.signature"
    raw = RAW_A.replace(b'"hard_max": 50.0', b'"hard_max": 50', 1)
    assert raw != RAW_A
    _rejected(raw)


def test_c03_number_reencoded_int_to_float_rejected() -> None:
    """C-03: a body signed with 50 (int) re-encoded as 50.0 is refused."""
    signed_int = _resign(_dopamine_hard_max(PKG_A, 50), PHARMACY)
    assert b'"hard_max": 50,' in _raw(signed_int)
    _same_as_a(verify_package(_raw(signed_int), TRUSTED))
    reencoded = _dopamine_hard_max(signed_int, 50.0)
    error = _rejected(_raw(reencoded))
    assert error.field == "package.signature"


@pytest.mark.parametrize("spelling", [b"5e1", b"50.00", b"5.0E+1", b"50.000000000000000001"])
def test_c03_reencoding_to_same_float_is_rejected_or_identical(spelling: bytes) -> None:
    """C-03: spellings that parse to the same float either fail or verify to the same library."""
    raw = RAW_A.replace(b'"hard_max": 50.0', b'"hard_max": ' + spelling, 1)
    _rejected_or_identical(raw)


def test_c03_unicode_escape_reencoding_rejected_or_identical() -> None:
    r"""C-03: "mcg" written as "\u006dcg" parses to the same text: refused or identical."""
    raw = RAW_A.replace(b'"mcg/kg/min"', b'"\\u006dcg/kg/min"', 1)
    assert raw != RAW_A
    _rejected_or_identical(raw)


def _insert_after(raw: bytes, anchor: bytes, extra: bytes) -> bytes:
    index = raw.find(anchor)
    assert index >= 0, anchor
    end = index + len(anchor)
    return raw[:end] + extra + raw[end:]


@pytest.mark.parametrize(
    ("anchor", "extra"),
    [
        (b"{\n", b' "format": "openinfusion-signed-library/1",\n'),
        (b'"hard_max": 50.0,', b' "hard_max": 500.0,'),
        (b'"name": "Test Hospital",', b' "name": "Test Hospital",'),
    ],
    ids=["top-level-format", "limit-last-wins", "same-value"],
)
def test_c03_duplicate_json_keys_rejected(anchor: bytes, extra: bytes) -> None:
    """C-03: duplicate keys anywhere in the package are refused (no first/last-wins games)."""
    error = _rejected(_insert_after(RAW_A, anchor, extra))
    assert "duplicate key" in error.rule


def test_c03_duplicate_signed_section_rejected() -> None:
    """C-03: two "signed" sections (one genuine, one evil) are refused, not resolved."""
    evil = json.dumps(PKG_B["signed"]).encode()
    raw = _insert_after(RAW_A, b"{\n", b' "signed": ' + evil + b",\n")
    assert "duplicate key" in _rejected(raw).rule


@pytest.mark.parametrize(
    "extra",
    [{"comment": "ok"}, {"signatures": []}, {"library": {}}, {"signed2": {}}],
    ids=lambda e: next(iter(e)),
)
def test_c03_unknown_top_level_fields_rejected(extra: dict[str, Any]) -> None:
    """C-03: unsigned extra top-level fields are refused (nothing unsigned rides along)."""
    package = _pkg()
    package.update(extra)
    error = _rejected(_raw(package))
    assert error.field == "package"
    assert "unknown top-level" in error.rule


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(mini_data()).encode(),
        yaml.safe_dump(mini_data()).encode(),
        b"",
        b"[]",
        b"null",
        json.dumps({**PKG_A, "format": "openinfusion-signed-library/2"}).encode(),
        json.dumps({**PKG_A, "format": None}).encode(),
    ],
    ids=["plain-json-library", "yaml-library", "empty", "list", "null", "format-v2", "no-format"],
)
def test_c03_not_a_package_rejected(raw: bytes) -> None:
    """C-03: a plain library file (or anything else) passed as a package is refused."""
    error = _rejected(raw)
    assert error.field.startswith("package")


def test_c03_package_file_rejected_from_disk(tmp_path: Path) -> None:
    """C-03: verify_package_file refuses a tampered file and accepts the genuine one."""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(RAW_A)
    bad.write_bytes(RAW_A.replace(b'"hard_max": 50.0', b'"hard_max": 90.0', 1))
    _same_as_a(verify_package_file(good, TRUSTED))
    with pytest.raises(SignatureRejected):
        verify_package_file(bad, TRUSTED)


# ---- keys -------------------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0 so a naive open() would create a world-readable file."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("passphrase", [None, b"correct horse battery staple"])
def test_c03_private_key_file_mode_is_0600(
    tmp_path: Path, open_umask: None, passphrase: bytes | None
) -> None:
    """C-03: the pharmacist's private key file is readable by its owner only (mode 600)."""
    path = tmp_path / "keys" / "pharmacy.key"
    save_private_key(PHARMACY, path, passphrase)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_c03_private_key_overwrites_loose_file_with_0600(tmp_path: Path) -> None:
    """C-03: saving over a world-readable file still leaves mode 600."""
    path = tmp_path / "pharmacy.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    save_private_key(PHARMACY, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(load_private_key(path)) == key_id(PHARMACY)


def test_c03_encrypted_key_needs_the_passphrase(tmp_path: Path) -> None:
    """C-03: an encrypted key does not load without, or with a wrong, passphrase."""
    path = tmp_path / "pharmacy.key"
    save_private_key(PHARMACY, path, b"s3cret pass")
    assert b"ENCRYPTED" in path.read_bytes()
    for wrong in (None, b"wrong pass"):
        with pytest.raises(InputError) as info:
            load_private_key(path, wrong)
        assert info.value.field == "private_key"
    assert key_id(load_private_key(path, b"s3cret pass")) == key_id(PHARMACY)


def test_c03_public_key_is_not_a_private_key(tmp_path: Path) -> None:
    """C-03: a public key file given where the private key is expected is refused."""
    path = tmp_path / "pharmacy.pub"
    save_public_key(PHARMACY.public_key(), path)
    with pytest.raises(InputError) as info:
        load_private_key(path)
    assert info.value.field == "private_key"
