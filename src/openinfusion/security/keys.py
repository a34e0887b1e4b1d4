"""Ed25519 keys and signatures, and the canonical JSON bytes that get signed.

Content that can harm a patient (drug libraries, therapy commands) is signed by the person
or device that authored it; whoever relays it cannot forge it. Keys come from
``cryptography`` (no hand-written crypto). A key is named by its *key id*: the first 16
hex digits of the SHA-256 of its raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openinfusion.errors import InputError

PrivateKey = Ed25519PrivateKey
PublicKey = Ed25519PublicKey


def generate_private_key() -> PrivateKey:
    """A fresh Ed25519 private key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


def public_bytes(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: PublicKey | PrivateKey) -> str:
    """Short, stable name of a key: 16 hex digits of SHA-256(raw public key)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def sign(key: PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8, no NaN/Infinity.

    Python's float repr is the shortest round-trip form, so parsing and re-encoding a
    canonical document gives the same bytes.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, field: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(field, text, "must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InputError(field, text[:40], "is not valid base64") from None


def _write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 600, atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_private_key(key: PrivateKey, path: str | Path, passphrase: bytes | None = None) -> None:
    """Save as PKCS#8 PEM (encrypted when a passphrase is given), file mode 600."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_private_file(Path(path), pem)


def save_public_key(key: PublicKey, path: str | Path) -> None:
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    Path(path).write_bytes(pem)


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load an Ed25519 private key PEM; clear errors for a wrong file or passphrase."""
    data = _read(path, "private_key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise InputError(
            "private_key",
            str(path),
            "is encrypted: set the passphrase (or it is not encrypted and one was given)",
        ) from None
    except ValueError:
        raise InputError(
            "private_key", str(path), "is not a PEM private key, or the passphrase is wrong"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("private_key", str(path), "must be an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> PublicKey:
    """Load an Ed25519 public key PEM."""
    data = _read(path, "public_key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InputError("public_key", str(path), "is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("public_key", str(path), "must be an Ed25519 key")
    return key


def _read(path: str | Path, field: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(field, str(path), f"cannot be read ({exc.strerror})") from None
    if len(data) > 64 * 1024:
        raise InputError(field, str(path), "is too large to be a key file")
    return data
