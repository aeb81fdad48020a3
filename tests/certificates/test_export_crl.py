"""`manage.py export_crl`: the CRL file nginx's ssl_crl reads, checked the way nginx checks it."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import CommandError, call_command
from django.utils import timezone

from certificates import ca as portal_ca
from certificates.models import CertificateAuthority
from certificates.services import revoke_certificate
from tests.support.clients import issue_for

pytestmark = pytest.mark.embedded


def export(tmp_path):
    output = tmp_path / "crl.pem"
    call_command("export_crl", str(output), stdout=io.StringIO())
    return output


def openssl_verify(tmp_path, crl, certificate) -> subprocess.CompletedProcess:
    """nginx's check: the chain, and a CRL for every certificate in it (crl_check_all)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    chain = tmp_path / "chain.pem"
    chain.write_text(portal_ca.chain_pem())
    leaf = tmp_path / f"{certificate.serial_number}.pem"
    leaf.write_text(certificate.pem)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", chain, "-CRLfile", crl, "-crl_check_all", "-purpose", "sslclient", leaf],
        capture_output=True, text=True,
    )


def test_it_writes_the_issuing_and_the_root_crl(ca, tmp_path):
    pem = export(tmp_path).read_bytes()
    begin = b"-----BEGIN X509 CRL-----"
    crls = [x509.load_pem_x509_crl(begin + part) for part in pem.split(begin)[1:]]
    assert len(crls) == 2
    issuers = {crl.issuer for crl in crls}
    authorities = {CertificateAuthority.objects.get(kind=kind).certificate for kind in ("issuing", "root")}
    assert issuers == {authority.subject for authority in authorities}
    for crl in crls:
        signer = next(authority for authority in authorities if authority.subject == crl.issuer)
        assert crl.is_signature_valid(signer.public_key())


def test_a_valid_certificate_passes_the_check_nginx_makes(alice, ca, tmp_path):
    certificate, _key = issue_for(alice)
    result = openssl_verify(tmp_path, export(tmp_path), certificate)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_revoked_certificate_fails_the_check_nginx_makes(alice, ca, tmp_path):
    certificate, _key = issue_for(alice)
    revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
    result = openssl_verify(tmp_path, export(tmp_path), certificate)
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr


def test_the_export_carries_the_roots_crl_as_signed_offline_and_never_signs_one(ca, tmp_path):
    root = CertificateAuthority.objects.get(kind="root")

    exported = export(tmp_path).read_bytes()

    assert x509.load_der_x509_crl(bytes(root.crl_der)).public_bytes(Encoding.PEM) in exported
    assert CertificateAuthority.objects.get(kind="root").last_crl_number == root.last_crl_number


def test_without_a_current_root_crl_the_export_says_who_must_sign_one(ca, tmp_path):
    CertificateAuthority.objects.filter(kind="root").update(crl_next_update=timezone.now())

    with pytest.raises(CommandError, match="sign_root_crl"):
        export(tmp_path)


def test_a_directory_as_the_output_is_a_clear_error_and_leaves_no_temporary_file(ca, tmp_path):
    output = tmp_path / "crl.pem"
    output.mkdir()

    with pytest.raises(CommandError, match=r"Cannot write .*crl\.pem: Is a directory"):
        call_command("export_crl", str(output), stdout=io.StringIO())

    assert [path.name for path in tmp_path.iterdir()] == ["crl.pem"]
    assert list(output.iterdir()) == []
