"""The PKCS#11 backend against Debian's SoftHSM2: keys made in the token, never leaving it, signing everything.

The test makes its own token in a temporary directory (SOFTHSM2_CONF), as an HSM's
security officer would, and runs the CA on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from django.core.management import call_command

from certificates import keys, ocsp
from certificates.ca import create_ca, unlock
from certificates.crl import publish_crl, sign_root_crl
from certificates.models import CertificateAuthority
from tests.support.clients import issue_for
from tests.support.personas import ROOT_PASSPHRASE
from tests.support.pki import ocsp_request

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN, PIN = "certportal-test", "12345678"
ROOT_TOKEN, ROOT_PIN = "certportal-root-test", "root-pin-4321"  # the root's own token, as an HSM partition


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory) -> Path:
    if not SOFTHSM_MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (Debian's softhsm2; .ci/run installs it)")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the module when this process loads it
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", "87654321", "--pin", PIN],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", ROOT_TOKEN, "--so-pin", "87654321",
         "--pin", ROOT_PIN],
        check=True, capture_output=True,
    )
    yield SOFTHSM_MODULE
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_ca(db, softhsm, settings):
    settings.KEY_BACKEND = "pkcs11"
    settings.PKCS11_MODULE, settings.PKCS11_TOKEN_LABEL, settings.PKCS11_PIN = str(softhsm), TOKEN, PIN
    settings.ISSUING_CA_PASSPHRASE = settings.ROOT_CA_PASSPHRASE = None  # no secret but the token's PIN
    issuing, _created = create_ca()
    return issuing


def token_private_keys(name: str = ""):
    import pkcs11

    from certificates.pkcs11 import _session

    with _session(name) as session:
        return [
            {attribute: key[attribute] for attribute in (
                pkcs11.Attribute.LABEL, pkcs11.Attribute.SENSITIVE, pkcs11.Attribute.EXTRACTABLE,
                pkcs11.Attribute.TOKEN, pkcs11.Attribute.ALWAYS_SENSITIVE, pkcs11.Attribute.NEVER_EXTRACTABLE,
            )}
            for key in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})
        ]


def test_init_ca_makes_both_keys_in_the_token_sensitive_and_not_extractable(hsm_ca):
    import pkcs11

    stored = dict(CertificateAuthority.objects.values_list("kind", "encrypted_key_pem"))
    assert all(reference.startswith(f"pkcs11:token={TOKEN};object=certportal-") for reference in stored.values())
    assert all("PRIVATE KEY" not in reference for reference in stored.values())

    ours = [key for key in token_private_keys() if key[pkcs11.Attribute.LABEL] in (
        "certportal-root", "certportal-issuing"
    )]
    assert {key[pkcs11.Attribute.LABEL] for key in ours} >= {"certportal-root", "certportal-issuing"}
    for key in ours:
        assert key[pkcs11.Attribute.SENSITIVE] is True
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.TOKEN] is True
        assert key[pkcs11.Attribute.ALWAYS_SENSITIVE] is True
        assert key[pkcs11.Attribute.NEVER_EXTRACTABLE] is True


def test_certificates_and_crls_are_signed_in_the_token_and_verify(hsm_ca, bob):
    root, issuing = unlock("root").certificate, unlock("issuing").certificate
    issuing.verify_directly_issued_by(root)
    for record in CertificateAuthority.objects.all():
        assert keys.backend().public_key(record.kind, record.encrypted_key_pem) == record.certificate.public_key()

    certificate, _key = issue_for(bob)
    certificate.x509.verify_directly_issued_by(issuing)
    crl = x509.load_der_x509_crl(bytes(publish_crl().der))
    assert crl.is_signature_valid(issuing.public_key())
    root_crl = x509.load_der_x509_crl(bytes(sign_root_crl(days=365).crl_der))
    assert root_crl.is_signature_valid(root.public_key())


def test_the_root_crl_command_needs_no_passphrase_with_the_token(hsm_ca, settings, capsys):
    call_command("sign_root_crl", "--days", "30")
    assert "Root CRL #" in capsys.readouterr().out


def test_the_encrypted_backend_cannot_use_a_key_that_lives_in_the_token(hsm_ca, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.KEY_BACKEND, settings.ISSUING_CA_PASSPHRASE = "encrypted", ROOT_PASSPHRASE + "-issuing"
    with pytest.raises(ImproperlyConfigured, match="CERTPORTAL_KEY_BACKEND"):
        publish_crl()


def test_the_ocsp_responders_key_is_made_in_the_token_and_signs_its_answers_there(hsm_ca, bob):
    import pkcs11

    certificate, _key = issue_for(bob)
    answer = x509_ocsp.load_der_ocsp_response(ocsp.respond(ocsp_request(certificate.x509)))

    assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    responder = ocsp.responder(now=answer.this_update_utc)
    assert responder.encrypted_key_pem.startswith(f"pkcs11:token={TOKEN};object=certportal-ocsp-responder")
    (responder_certificate,) = answer.certificates
    assert responder_certificate == responder.certificate
    responder.certificate.verify_directly_issued_by(unlock("issuing").certificate)
    responder.certificate.public_key().verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )
    (in_token,) = [key for key in token_private_keys()
                   if key[pkcs11.Attribute.LABEL] == "certportal-ocsp-responder"]
    assert in_token[pkcs11.Attribute.EXTRACTABLE] is False and in_token[pkcs11.Attribute.SENSITIVE] is True


def test_with_a_root_token_of_its_own_the_services_cannot_reach_the_root_key(db, softhsm, settings, bob):
    """The root in its own token (an HSM partition) whose PIN, like the root's passphrase, no service has."""
    import pkcs11
    from django.core.management import CommandError

    settings.KEY_BACKEND = "pkcs11"
    settings.PKCS11_MODULE, settings.PKCS11_TOKEN_LABEL, settings.PKCS11_PIN = str(softhsm), TOKEN, PIN
    settings.PKCS11_ROOT_TOKEN_LABEL, settings.PKCS11_ROOT_PIN = ROOT_TOKEN, ROOT_PIN
    settings.ISSUING_CA_PASSPHRASE = settings.ROOT_CA_PASSPHRASE = None
    call_command("init_ca", stdout=open(os.devnull, "w"))  # noqa: SIM115 - the ceremony, given the root's PIN

    stored = dict(CertificateAuthority.objects.values_list("kind", "encrypted_key_pem"))
    assert stored["root"].startswith(f"pkcs11:token={ROOT_TOKEN};object=certportal-root;")
    assert stored["issuing"].startswith(f"pkcs11:token={TOKEN};object=certportal-issuing;")
    in_root_token = token_private_keys("root")
    assert [key[pkcs11.Attribute.LABEL] for key in in_root_token] == ["certportal-root"]
    assert in_root_token[0][pkcs11.Attribute.SENSITIVE] and not in_root_token[0][pkcs11.Attribute.EXTRACTABLE]

    settings.PKCS11_ROOT_PIN = None  # every service: the portal's token and PIN only
    certificate, _key = issue_for(bob)
    certificate.x509.verify_directly_issued_by(unlock("issuing").certificate)
    crl = x509.load_der_x509_crl(bytes(publish_crl().der))
    assert crl.is_signature_valid(unlock("issuing").certificate.public_key())
    answer = x509_ocsp.load_der_ocsp_response(ocsp.respond(ocsp_request(certificate.x509)))
    assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    with pytest.raises(CommandError, match="CERTPORTAL_PKCS11_ROOT_PIN"):
        call_command("sign_root_crl", "--days", "30")

    settings.PKCS11_ROOT_PIN = ROOT_PIN  # the root's operator, at the yearly ceremony
    root = sign_root_crl(days=30)
    assert x509.load_der_x509_crl(bytes(root.crl_der)).is_signature_valid(unlock("root").certificate.public_key())
