"""Personas and CA fixtures shared by the suite, and what every test gets (tests/README.md).

Personas (after healthchecks' Alice/Bob/Charlie): `alice` administers contract A,
`bob` is a user ID of contract A, `charlie` administers contract B, `dave` is a user ID
of contract B, `olivia` is a bank operator. Every persona's password is PASSWORD.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.models import Contract, User
from certificates.ca import create_ca
from tests.support.clients import issue_for_operator, operator_signed_in
from tests.support.net import reachable
from tests.support.personas import PASSWORD, ROOT_PASSPHRASE
from tests.support.pki import make_csr

pytest_plugins = ["tests.support.servers", "tests.support.browser"]  # real gunicorn, nginx and Chromium

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items) -> None:
    """Every test under tests/e2e/ is marked `e2e`, so that `-m "not e2e"` leaves the browser and stack runs out."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def fast_password_hashing(request) -> None:
    """The personas' passwords hash in microseconds: the hashers' deliberate cost is not under test.

    Not for end-to-end tests, nor for tests marked `full_strength_hashing`: their servers run in
    subprocesses with the production hashers, which must read the passwords set here.
    """
    if request.node.get_closest_marker("e2e") or request.node.get_closest_marker("full_strength_hashing"):
        return
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """One test database per pytest process, so that parallel runs never share one."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(suffix=f"p{os.getpid()}")


@pytest.fixture
def key_ceremony(settings):
    """The root's secret, as only `init_ca` and `sign_root_crl` are given it; no other test has it."""
    settings.ROOT_CA_PASSPHRASE = ROOT_PASSPHRASE
    return ROOT_PASSPHRASE


_ca_rows: list[dict] = []


@pytest.fixture
def ca(db):
    """The portal's CA as `init_ca` leaves it (with the root's first CRL): made once per process, then its
    rows copied into each test's database.

    Wrapping two keys at 600,000 PBKDF2 rounds costs about a second; this keeps the suite's
    hundreds of CA-using tests from paying it each time (tests of `create_ca` itself call it).
    """
    from django.test import override_settings

    from certificates.crl import sign_root_crl
    from certificates.models import CertificateAuthority

    if not _ca_rows:
        with override_settings(ROOT_CA_PASSPHRASE=ROOT_PASSPHRASE):
            issuing, _created = create_ca()
            sign_root_crl(days=365)
        _ca_rows.extend({**row, "id": None} for row in CertificateAuthority.objects.order_by("pk").values())
        return CertificateAuthority.objects.get(pk=issuing.pk)
    CertificateAuthority.objects.bulk_create(CertificateAuthority(**row) for row in _ca_rows)
    return CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ISSUING)


@pytest.fixture
def contract_a(db) -> Contract:
    return Contract.objects.create(number="2000001", name="Alpha Trading K.K.")


@pytest.fixture
def contract_b(db) -> Contract:
    return Contract.objects.create(number="3000001", name="Beta Industries K.K.")


@pytest.fixture
def alice(contract_a) -> User:
    return User.objects.create_user("alice-admin", "alice@alpha.example", PASSWORD, contract=contract_a,
                                    role=User.Role.ADMINISTRATOR)


@pytest.fixture
def bob(contract_a) -> User:
    return User.objects.create_user("bob-user", "bob@alpha.example", PASSWORD, contract=contract_a,
                                    role=User.Role.USER)


@pytest.fixture
def charlie(contract_b) -> User:
    return User.objects.create_user("charlie-admin", "charlie@beta.example", PASSWORD, contract=contract_b,
                                    role=User.Role.ADMINISTRATOR)


@pytest.fixture
def dave(contract_b) -> User:
    return User.objects.create_user("dave-user", "dave@beta.example", PASSWORD, contract=contract_b,
                                    role=User.Role.USER)


@pytest.fixture
def olivia(db) -> User:
    return User.objects.create_superuser("olivia-operator", "olivia@bank.example", PASSWORD)


# Before every time the operators' tests travel to (late November to December 2026), and today.
OPERATOR_CERTIFICATE_ISSUED = datetime(2026, 10, 27, 1, 0, tzinfo=UTC)


@pytest.fixture
def operator_client(ca, behind_proxy, olivia):
    """Olivia logged in with her operator certificate and password (certificates/test_operator_login.py).

    Her certificate is issued on OPERATOR_CERTIFICATE_ISSUED, so that it is valid today and at every
    time these tests travel to.
    """
    certificate, _key = issue_for_operator(olivia, now=OPERATOR_CERTIFICATE_ISSUED)
    return operator_signed_in(olivia, certificate)


@pytest.fixture
def csr_factory() -> Callable[..., tuple[bytes, object]]:
    return make_csr


@pytest.fixture(scope="session")
def rsa_2048_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("CERTPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if not reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it; see .ci/run)")
    return url


@pytest.fixture
def behind_proxy(settings):
    """Trust the test clients' address as the TLS-terminating proxy."""
    settings.TRUSTED_PROXY_ADDRESSES = ["127.0.0.1"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings
