"""Password hashing (Argon2id via argon2-cffi) and strong random password generation.

Hashes carry their own parameters, so :func:`needs_rehash` tells when stored hashes were
made with weaker settings than today's and should be replaced at the next good login.
"""

from __future__ import annotations

import functools
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from openinfusion.errors import InputError

# argon2-cffi's defaults follow RFC 9106's second recommended option (Argon2id, 64 MiB).
_HASHER = PasswordHasher()

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
_ALPHABET = string.ascii_letters + string.digits + "-_.!@#%+="


def check_password_rules(password: str, field: str = "password") -> None:
    """Refuse passwords too short or too long to be accepted (length only, NIST 800-63B)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(field, None, f"must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(field, None, f"must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An Argon2id hash string (with salt and parameters) of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False for a mismatch or bad hash."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with other parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def generate_password(length: int = 20) -> str:
    """A random password from the OS CSPRNG with letters, digits and symbols (>= 120 bits)."""
    if length < 16:
        raise InputError("length", length, "must be at least 16 for a generated password")
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        classes = (
            any(c.islower() for c in candidate),
            any(c.isupper() for c in candidate),
            any(c.isdigit() for c in candidate),
            any(not c.isalnum() for c in candidate),
        )
        if all(classes):
            return candidate


# A hash of a random password, verified against when a username is unknown so that an
# unknown user costs the same time as a wrong password (no enumeration by timing).
@functools.cache
def dummy_hash() -> str:
    """A hash no one knows the password of, for constant-cost failed logins."""
    return hash_password(secrets.token_urlsafe(24))
