"""`make run`'s TLS files: the CA chain and a server certificate from the portal's own CA."""

from __future__ import annotations

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


def test_a_new_ca_gets_a_new_server_certificate(ca, key_ceremony, tmp_path):
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
