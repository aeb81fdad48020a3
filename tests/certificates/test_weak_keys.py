"""Keys with known weaknesses are refused on every channel, with a clear reason, and audited.

Each weak key is made here the way the weakness arises (close primes, a tiny prime factor,
the ROCA structure), so the checks of badkeys are tested on keys they have never seen.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from pathlib import Path

import gmpy2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditEntry
from certificates import weak_keys as weak_keys_module
from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.csr import CsrRejected, check_public_key
from certificates.models import Certificate, CertificateAction
from certificates.services import issue_certificate
from tests.support.clients import CertificateClient, code_from_mail, issue_for
from tests.support.personas import PASSWORD
from tests.support.pki import make_csr

E = 65537
# The modulus of ROCA's fingerprint (badkeys.rsakeys.roca): Infineon's primes are k·M + 65537^a mod M.
ROCA_M = 0x924CBA6AE99DFA084537FACC54948DF0C23DA044D8CABE0EDD75BC6
DEBIAN_WEAK_RSA = Path(__file__).parents[1] / "data" / "rsa-debianweak.pem"


def prime_with_bits(bits: int) -> int:
    while True:
        p = int(gmpy2.next_prime(secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2))))
        if p.bit_length() == bits and gmpy2.gcd(p - 1, E) == 1:
            return p


def rsa_key(p: int, q: int) -> rsa.RSAPrivateKey:
    d = pow(E, -1, (p - 1) * (q - 1))
    return rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q), iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(E, p * q),
    ).private_key()


def fermat_key() -> rsa.RSAPrivateKey:
    """Two 1024-bit primes a mere 2^500 apart: √n is almost their mean."""
    p = prime_with_bits(1024)
    q = p + (1 << 500)
    while not (gmpy2.is_prime(q) and gmpy2.gcd(q - 1, E) == 1):
        q = int(gmpy2.next_prime(q))
    return rsa_key(p, int(q))


def small_factor_key() -> rsa.RSAPrivateKey:
    """A 2048-bit modulus with the prime 3 as a factor."""
    return rsa_key(3, prime_with_bits(2047))


def roca_prime(bits: int) -> int:
    # The two top bits set, so that the product of two such primes has all of 2 * bits.
    low, high = (3 << (bits - 2)) // ROCA_M + 1, (1 << bits) // ROCA_M
    while True:
        p = (low + secrets.randbelow(high - low)) * ROCA_M + pow(E, secrets.randbelow(1 << 64), ROCA_M)
        if p < 1 << bits and gmpy2.is_prime(p) and gmpy2.gcd(p - 1, E) == 1:
            return p


def roca_key() -> rsa.RSAPrivateKey:
    return rsa_key(roca_prime(1024), roca_prime(1024))


@pytest.fixture(scope="module")
def weak_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"weak_key_fermat": fermat_key(), "weak_key_small_factors": small_factor_key(),
            "weak_key_roca": roca_key()}


def write_blocklist(path: Path, values: list[int]) -> Path:
    """A file in badkeys' blocklist format holding these key values: it tests the reader, it is no real list.

    The real one (badkeys' lists, Debian's CVE-2008-0166 keys among them) is installed by the
    operator with `badkeys --update-bl` (deploy/README.md, Weak keys); none is shipped here.
    """
    records = sorted(
        hashlib.sha256(value.to_bytes((value.bit_length() + 7) // 8, "big")).digest()[:15] + b"\x01"
        for value in values
    )
    path.write_bytes(b"".join(records))
    return path


def refusal(user, csr) -> CsrRejected:
    with pytest.raises(CsrRejected) as caught:
        issue_certificate(user=user, csr=csr, via=Certificate.Channel.OPERATOR)
    assert not Certificate.objects.filter(owner=user).exists()
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=user, detail__reason=caught.value.code
    ).exists()
    return caught.value


@pytest.mark.parametrize(
    ("code", "english", "japanese"),
    [
        ("weak_key_fermat", "(Fermat)", "Fermat法"),
        ("weak_key_small_factors", "small prime factor", "小さな素因数"),
        ("weak_key_roca", "CVE-2017-15361", "ROCA脆弱性"),
    ],
)
def test_it_refuses_a_key_with_a_known_weakness_and_says_which(ca, bob, weak_keys, code, english, japanese):
    error = refusal(bob, make_csr(weak_keys[code])[0])

    assert error.code == code
    with translation.override("en"):
        assert english in str(error.message) and "new key" in str(error.message)
    with translation.override("ja"):
        assert japanese in str(error.message)


def test_a_well_made_rsa_key_of_the_same_size_is_certified(ca, bob):
    key = rsa.generate_private_key(public_exponent=E, key_size=2048)
    assert issue_certificate(user=bob, csr=make_csr(key)[0], via=Certificate.Channel.OPERATOR).created


def test_debians_weak_rsa_key_is_refused_once_the_blocklist_is_installed(db, settings, tmp_path):
    text = DEBIAN_WEAK_RSA.read_bytes()
    weak = serialization.load_pem_public_key(text[text.index(b"-----BEGIN"):])
    settings.WEAK_KEY_BLOCKLIST = None
    check_public_key(weak)  # without the blocklist only the arithmetic checks run, and this key passes them

    settings.WEAK_KEY_BLOCKLIST = str(write_blocklist(tmp_path / "blocklist.dat", [weak.public_numbers().n]))

    with pytest.raises(CsrRejected) as caught:
        check_public_key(weak)
    assert caught.value.code == "weak_key_blocklisted"
    with translation.override("en"):
        assert "CVE-2008-0166" in str(caught.value.message)
    check_public_key(rsa.generate_private_key(public_exponent=E, key_size=2048).public_key())


def test_a_blocklisted_p256_key_is_refused_at_renewal_and_audited(ca, alice, behind_proxy, settings, tmp_path):
    certificate, _key = issue_for(alice)
    weak = ec.generate_private_key(ec.SECP256R1())
    blocklist = write_blocklist(tmp_path / "blocklist.dat", [weak.public_key().public_numbers().x])
    settings.WEAK_KEY_BLOCKLIST = str(blocklist)
    client = CertificateClient(certificate)
    client.force_login(alice)
    session = client.session
    session[SESSION_CERTIFICATE_KEY] = certificate.fingerprint_sha256
    session.save()

    response = client.post(
        reverse("renewal-issue"), data=json.dumps({"csr": make_csr(weak, common_name=alice.login_id)[0].decode()}),
        content_type="application/json", HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400, response.content
    assert "CVE-2008-0166" in response.json()["error"]
    assert Certificate.objects.filter(owner=alice).count() == 1
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=alice, detail__reason="weak_key_blocklisted",
        detail__via="renewal",
    ).exists()


def test_the_operators_issue_certificate_command_refuses_a_weak_key_with_the_reason(ca, bob, weak_keys, tmp_path):
    csr = tmp_path / "bob.csr"
    csr.write_bytes(make_csr(weak_keys["weak_key_roca"])[0])

    with translation.override("en"), pytest.raises(CommandError, match="ROCA"):
        call_command("issue_certificate", "bob-user", "--csr", str(csr), stdout=io.StringIO())
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=bob, detail__reason="weak_key_roca", detail__via="operator"
    ).exists()


def test_the_portal_reads_a_blocklist_as_badkeys_itself_does(db, settings, tmp_path, monkeypatch):
    """The same file, looked up by badkeys' own reader (from its cache, as `--update-bl` leaves it) and by ours."""
    from badkeys.allkeys import block

    rsa_weak = rsa.generate_private_key(public_exponent=E, key_size=2048).public_key()
    ec_weak = ec.generate_private_key(ec.SECP256R1()).public_key()
    cache = tmp_path / "badkeys"
    cache.mkdir()
    write_blocklist(cache / "blocklist.dat", [rsa_weak.public_numbers().n, ec_weak.public_numbers().x])
    (cache / "badkeysdata.json").write_text(json.dumps({"blocklists": [{"id": 1, "name": "listed-here"}]}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(block, "_bldata", False)
    monkeypatch.setattr(block, "_blmeta", False)
    settings.WEAK_KEY_BLOCKLIST = str(cache / "blocklist.dat")

    for weak, value in ((rsa_weak, rsa_weak.public_numbers().n), (ec_weak, ec_weak.public_numbers().x)):
        assert block.blocklist(value)["subtest"] == "listed-here"
        assert weak_keys_module.weakness(weak) == weak_keys_module.BLOCKLISTED
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert block.blocklist(other.public_numbers().x) is False
    assert weak_keys_module.weakness(other) is None


def test_a_weak_key_is_refused_and_audited_on_the_obtain_screen(
    ca, charlie, behind_proxy, weak_keys, django_capture_on_commit_callbacks
):

    browser = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en")
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(reverse("obtain-start"), {"login_id": charlie.login_id, "password": PASSWORD})
    assert browser.post(reverse("obtain-code"), {"code": code_from_mail(mail.outbox[-1])}).status_code == 302

    response = browser.post(
        reverse("obtain-issue"), content_type="application/json",
        data=json.dumps({"csr": make_csr(weak_keys["weak_key_fermat"])[0].decode()}),
    )

    assert response.status_code == 400
    assert response.json()["code"] == "weak_key_fermat" and "(Fermat)" in response.json()["error"]
    assert not Certificate.objects.filter(owner=charlie).exists()
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=charlie, detail__reason="weak_key_fermat",
        detail__via="obtain",
    ).exists()


def test_the_operators_certificate_command_refuses_a_weak_key_with_the_reason(ca, olivia, weak_keys, tmp_path):
    csr = tmp_path / "olivia.csr"
    csr.write_bytes(make_csr(weak_keys["weak_key_small_factors"])[0])

    with translation.override("en"), pytest.raises(CommandError, match="small prime factor"):
        call_command("issue_operator_certificate", "olivia-operator", "--csr", str(csr), stdout=io.StringIO())
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=olivia, detail__reason="weak_key_small_factors",
        detail__via="operator_access",
    ).exists()
