"""`make run`'s TLS files: the CA chain and a server certificate from the portal's own CA."""

from __future__ import annotations

import io

import pytest
from cryptography import x509

from certificates import ca as portal_ca
from certificates.ca import create_ca
from certificates.models import CertificateAuthority
from certportal.run import gunicorn_command, prepare_tls

pytestmark = pytest.mark.embedded


def test_the_server_certificate_is_issued_by_the_portals_ca_for_the_hosts(ca, tmp_path):
    chain, cert, key = prepare_tls(["localhost", "127.0.0.1"], tmp_path)
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    server.verify_directly_issued_by(portal_ca.unlock().certificate)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert chain.read_text() == portal_ca.chain_pem()
    assert key.stat().st_mode & 0o077 == 0


def test_the_server_certificate_is_kept_while_the_ca_is_the_same(ca, tmp_path):
    _chain, cert, _key = prepare_tls(["localhost"], tmp_path)
    first = cert.read_bytes()
    prepare_tls(["localhost"], tmp_path)
    assert cert.read_bytes() == first


def test_a_new_ca_gets_a_new_server_certificate(ca, tmp_path):
    _chain, cert, _key = prepare_tls(["localhost"], tmp_path)
    CertificateAuthority.objects.all().delete()
    create_ca()
    prepare_tls(["localhost"], tmp_path)
    x509.load_pem_x509_certificate(cert.read_bytes()).verify_directly_issued_by(portal_ca.unlock().certificate)


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
    assert "run: CERTPORTAL_PUBLIC_BASE_URL = https://localhost:$(PORT)" in database
