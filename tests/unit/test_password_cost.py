"""The production password hasher keeps argon2-cffi's recommended cost (tests/conftest.py lowers it for the tests)."""

from __future__ import annotations

import importlib.util

import pytest
from argon2 import PasswordHasher

from connector.accounts import passwords

pytestmark = pytest.mark.unit


def test_production_hashes_cost_64_mib_and_three_passes() -> None:
    spec = importlib.util.spec_from_file_location("production_passwords", passwords.__file__)
    assert spec is not None
    assert spec.loader is not None
    production = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(production)  # a fresh copy: the module as a server imports it
    hasher = production._HASHER
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    assert production.hash_password("a long enough password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_the_tests_verify_a_production_hash() -> None:
    strong = PasswordHasher().hash("a long enough password")
    assert passwords.verify_password(strong, "a long enough password")
    assert not passwords.verify_password(strong, "another long password")
