"""`manage.py export_crl`: the CRL file nginx's ssl_crl reads, checked the way nginx checks it."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command

from certificates import ca as portal_ca
from certificates.models import CertificateAuthority
from certificates.services import revoke_certificate

from .clients import issue_for

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


def test_each_export_gives_the_root_crl_a_higher_number(ca, tmp_path):
    def root_number() -> int:
        return CertificateAuthority.objects.get(kind="root").last_crl_number

    export(tmp_path)
    first = root_number()
    export(tmp_path)
    assert root_number() == first + 1


def test_a_directory_as_the_output_is_a_clear_error_and_leaves_no_temporary_file(ca, tmp_path):
    output = tmp_path / "crl.pem"
    output.mkdir()

    with pytest.raises(CommandError, match=r"Cannot write .*crl\.pem: Is a directory"):
        call_command("export_crl", str(output), stdout=io.StringIO())

    assert [path.name for path in tmp_path.iterdir()] == ["crl.pem"]
    assert list(output.iterdir()) == []
