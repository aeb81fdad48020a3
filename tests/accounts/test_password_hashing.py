"""The password hash every ID gets: Argon2id at OWASP's minimum costs, and older hashes upgraded at login."""

from __future__ import annotations

import pytest
from argon2 import Type as Argon2Type
from argon2 import extract_parameters
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.urls import reverse

from tests.support.clients import CertificateClient, issue_for
from tests.support.personas import PASSWORD

pytestmark = [pytest.mark.embedded, pytest.mark.full_strength_hashing]


def argon2_parameters(encoded: str):
    algorithm, _, rest = encoded.partition("$")
    assert algorithm == "argon2"
    return extract_parameters("$" + rest)


def test_a_new_password_is_hashed_with_argon2id_at_owasps_minimum_costs():
    parameters = argon2_parameters(make_password("Another-horse-2026"))
    assert parameters.type is Argon2Type.ID
    assert parameters.memory_cost >= 19 * 1024  # KiB
    assert parameters.time_cost >= 2
    assert parameters.parallelism >= 1


def test_the_production_hashers_start_with_argon2id_and_still_read_pbkdf2():
    assert settings.PASSWORD_HASHERS[0] == "accounts.hashers.BankArgon2idHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in settings.PASSWORD_HASHERS


@pytest.mark.usefixtures("ca", "behind_proxy")
def test_a_pbkdf2_hash_is_upgraded_to_argon2id_at_the_next_login_and_the_session_goes_on(alice):
    alice.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    alice.save(update_fields=["password"])
    certificate, _key = issue_for(alice)
    client = CertificateClient(certificate)

    response = client.post(reverse("login"), {"login_id": alice.login_id, "password": PASSWORD})

    assert response.status_code == 302
    alice.refresh_from_db()
    assert argon2_parameters(alice.password).type is Argon2Type.ID
    assert alice.check_password(PASSWORD)
    assert client.get(reverse("important-notices")).status_code == 200
