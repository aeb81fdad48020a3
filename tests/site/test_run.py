"""`make run`'s TLS files: the client CA chain, and a server certificate from a separate local TLS CA."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from cryptography import x509
from django.conf import settings

from certificates import ca as portal_ca
from certificates.ca import create_ca
from certificates.models import CertificateAuthority
from certportal.run import gunicorn_command, prepare_tls

pytestmark = pytest.mark.embedded


def test_the_server_certificate_is_issued_by_a_local_tls_ca_never_the_client_issuing_ca(ca, tmp_path):
    chain, cert, key, server_ca = prepare_tls(["localhost", "127.0.0.1"], tmp_path)
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(server_ca.read_bytes()))
    assert server.issuer != portal_ca.unlock().certificate.subject
    assert server.issuer not in [ca_cert.subject for ca_cert in x509.load_pem_x509_certificates(chain.read_bytes())]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert chain.read_text() == portal_ca.chain_pem()
    assert key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "server-ca.key").stat().st_mode & 0o077 == 0


def test_the_server_certificate_is_kept_while_the_ca_is_the_same(ca, tmp_path):
    cert = prepare_tls(["localhost"], tmp_path).certificate
    first = cert.read_bytes()
    prepare_tls(["localhost"], tmp_path)
    assert cert.read_bytes() == first


def test_a_new_client_ca_is_written_to_the_chain_gunicorn_trusts(ca, key_ceremony, tmp_path):
    prepare_tls(["localhost"], tmp_path)
    CertificateAuthority.objects.all().delete()
    create_ca()
    assert prepare_tls(["localhost"], tmp_path).client_ca.read_text() == portal_ca.chain_pem()


def test_gunicorn_asks_for_a_client_certificate_optionally():
    command = gunicorn_command(bind="127.0.0.1:8443", chain="c.pem", cert="s.pem", key="s.key")
    assert command[command.index("--cert-reqs") + 1] == "1"  # ssl.CERT_OPTIONAL
    assert command[command.index("--ca-certs") + 1] == "c.pem"
    assert "--certfile" not in gunicorn_command(bind="127.0.0.1:8000")  # behind nginx: plain HTTP


def test_make_run_gives_the_demo_operator_a_certificate_file_only_its_owner_can_read(ca, tmp_path):
    from cryptography.hazmat.primitives.serialization import pkcs12
    from django.core.management import call_command

    from certificates.models import Certificate
    from certportal.run import DEMO_OPERATOR_FILE_PASSWORD, prepare_operator_certificate

    assert prepare_operator_certificate(tmp_path) is None  # no demo operator before seed_demo
    call_command("seed_demo", "--force", stdout=io.StringIO())

    path = prepare_operator_certificate(tmp_path)

    assert path.stat().st_mode & 0o777 == 0o600
    _key, certificate, _chain = pkcs12.load_key_and_certificates(path.read_bytes(),
                                                                 DEMO_OPERATOR_FILE_PASSWORD.encode())
    issued = Certificate.objects.get(owner__login_id="bank-operator")
    assert issued.serial_number == f"{certificate.serial_number:X}"
    # Kept on the next run: no second certificate.
    first = path.read_bytes()
    assert prepare_operator_certificate(tmp_path) == path and path.read_bytes() == first
    assert Certificate.objects.count() == 1


def test_e_mail_links_use_the_address_make_run_serves_on():
    from certportal.run import served_address

    assert served_address("localhost", 9443, {}) == {"CERTPORTAL_PUBLIC_BASE_URL": "https://localhost:9443"}
    stated = {"CERTPORTAL_PUBLIC_BASE_URL": "https://portal.example"}
    assert served_address("localhost", 9443, stated) == {}  # what the environment states wins


def test_make_run_exports_its_port_as_the_portals_public_address():
    import subprocess

    from django.conf import settings

    database = subprocess.run(["make", "-n", "-p", "run", "PORT=9443"], cwd=settings.BASE_DIR, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert "run: CERTPORTAL_PUBLIC_BASE_URL = https://127.0.0.1:$(PORT)" in database


def test_in_debug_the_addresses_in_certificates_follow_the_port_make_run_serves_on(tmp_path):
    code = (
        "import os; from certportal.run import served_address;"
        " os.environ.update(served_address('127.0.0.1', 9445, os.environ)); import django; django.setup();"
        " from django.conf import settings as s; print(s.CRL_URL, s.OCSP_URL, s.CA_ISSUERS_URL)"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("CERTPORTAL_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True,
                            env={**env, "CERTPORTAL_VAR_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "https://127.0.0.1:9445/pki/crl", "https://127.0.0.1:9445/pki/ocsp", "https://127.0.0.1:9445/pki/ca.crt"
    ]
