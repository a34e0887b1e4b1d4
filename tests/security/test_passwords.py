"""Password hashing and generation (C-05: no default passwords, each one random)."""

from __future__ import annotations

import pytest

from openinfusion.errors import InputError
from openinfusion.security import generate_password, hash_password, needs_rehash, verify_password
from openinfusion.security.passwords import check_password_rules


def test_hash_verifies_only_the_right_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password("not-a-hash", "x")
    assert not needs_rehash(stored)
    assert needs_rehash("$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo")


def test_c05_generated_passwords_are_unique_and_strong() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for p in passwords:
        assert len(p) == 20
        assert any(c.isupper() for c in p) and any(c.isdigit() for c in p)
    with pytest.raises(InputError, match="length"):
        generate_password(8)


def test_password_rules_name_the_field() -> None:
    with pytest.raises(InputError, match="password: must have at least 12"):
        check_password_rules("short")
