"""Personas and CA fixtures shared by the suite.

Personas (after healthchecks' Alice/Bob/Charlie): `alice` administers contract A,
`bob` is a user ID of contract A, `charlie` is an ID of contract B, `olivia` is a
bank operator. Every persona's password is PASSWORD.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from accounts.models import Contract, User
from certificates.ca import create_ca

from .net import reachable

pytest_plugins = ["tests.servers", "tests.browser"]  # real gunicorn, nginx and Chromium

PASSWORD = "Correct-horse-2026"


def uses_postgresql() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith("postgres")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """One test database per pytest process, so that parallel runs never share one."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(suffix=f"p{os.getpid()}")


ROOT_PASSPHRASE = "a-test-root-passphrase-for-the-ceremony"


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
def olivia(db) -> User:
    return User.objects.create_superuser("olivia-operator", "olivia@bank.example", PASSWORD)


def make_csr(key=None, *, common_name: str = "anything", hash_algorithm=None) -> tuple[bytes, object]:
    """A PEM CSR and its private key; the subject is deliberately not the portal's choice."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hash_algorithm or hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


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
