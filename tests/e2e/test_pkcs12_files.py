"""The two PKCS#12 files the page makes, read by five independent implementations.

One Chromium session (module-scoped) renews Alice's certificate on the real pages with the
real bundle, saves the standard file, then the compatibility file from the issued screen,
and uses the screen's file-and-password check. Each file is then opened by OpenSSL 3,
NSS pk12util, Python's cryptography, Java's keytool and GnuTLS certtool (each test skips
when its tool is missing), and parsed with pyasn1 to compare every parameter with the files
`openssl pkcs12 -export` and `-export -legacy` make from the same key and certificates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Contract, User
from certificates import ca as portal_ca
from certificates.ca import create_ca
from certificates.services import supersede_older_certificates
from tests.support.browser import browser_for, needs_chromium, shot
from tests.support.clients import issue_for
from tests.support.personas import PASSWORD, ROOT_PASSPHRASE
from tests.support.pkcs12_structure import describe

FILE_PASSWORD = "Pkcs12-file-pass!"
WRONG_PASSWORD = "Pkcs12-file-pass?"

pytestmark = [needs_chromium, pytest.mark.xdist_group("pkcs12-files")]


@dataclass
class Saved:
    standard: Path
    compatibility: Path
    serial: str
    public_key_sha256: str
    friendly_name: str
    chain: list[x509.Certificate]
    check_messages: dict[str, str]


@pytest.fixture(scope="module")
def saved(chromium, live_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """Both files, saved by the page in one browser session, and what its file check said."""
    folder = tmp_path_factory.mktemp("pkcs12")
    proxy = {"TRUSTED_PROXY_ADDRESSES": ["127.0.0.1"], "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}
    with django_db_blocker.unblock(), override_settings(SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False, **proxy):
        try:
            with override_settings(ROOT_CA_PASSPHRASE=ROOT_PASSPHRASE):  # the key ceremony only
                create_ca()
            contract = Contract.objects.create(number="2000001", name="Alpha Trading K.K.")
            alice = User.objects.create_user("alice-admin", "alice@alpha.example", PASSWORD, contract=contract,
                                             role=User.Role.ADMINISTRATOR)
            issued_at = timezone.now() - timedelta(days=345)
            old, _key = issue_for(alice, now=issued_at)
            supersede_older_certificates(newer=old, now=issued_at + timedelta(hours=1))
            old.refresh_from_db()

            context = browser_for(chromium, live_server, alice, old, language="en")
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(error))
            page.goto(live_server.url + reverse("renewal-start"))
            page.locator("#p12-password").fill(FILE_PASSWORD)
            page.locator("#p12-password-again").fill(FILE_PASSWORD)
            page.get_by_role("button", name="Renew (更新)").click()
            page.locator("#confirm-key").get_by_role("button", name="Yes (はい)").click()
            install = page.locator("#confirm-install")
            install.wait_for(state="visible", timeout=15_000)
            with page.expect_download(timeout=15_000) as standard:
                install.get_by_role("button", name="Yes (はい)").click()
            standard_path = folder / standard.value.suggested_filename
            standard.value.save_as(standard_path)

            page.wait_for_url("**/certificate/renew/done/**", timeout=10_000)
            with page.expect_download(timeout=15_000) as compatibility:
                page.get_by_role("button", name="Save the compatibility file").click()
            compatibility_path = folder / compatibility.value.suggested_filename
            compatibility.value.save_as(compatibility_path)
            page.locator("#compatibility-status").filter(has_text="saved").wait_for(timeout=5_000)
            shot(page, "21-issued-with-compatibility-file")

            check_messages = {}
            result = page.locator("#check-result")
            for name, path, password in [
                ("standard, wrong password", standard_path, WRONG_PASSWORD),
                ("compatibility, right password", compatibility_path, FILE_PASSWORD),
                ("not a certificate file", Path(__file__), FILE_PASSWORD),
            ]:
                page.locator("#check-file").set_input_files(path)
                page.get_by_label("File password", exact=True).fill(password)
                page.get_by_role("button", name="Check", exact=True).click()
                page.wait_for_function("() => document.getElementById('check-result').textContent !== ''")
                check_messages[name] = result.inner_text()
            shot(page, "22-issued-file-check")
            context.close()
            assert errors == []

            new = alice.certificates.exclude(pk=old.pk).get()
            yield Saved(
                standard=standard_path,
                compatibility=compatibility_path,
                serial=new.serial_number,
                public_key_sha256=new.public_key_sha256,
                friendly_name=f"alice-admin ({new.serial_number})",
                chain=x509.load_pem_x509_certificates(portal_ca.chain_pem().encode()),
                check_messages=check_messages,
            )
        finally:
            call_command("flush", interactive=False, verbosity=0)
            connections.close_all()


FORMS = ["standard", "compatibility"]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def needs(tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"needs {tool} (CI installs it; see .ci/run)")


def needs_openssl(form: str = "standard") -> None:
    needs("openssl")
    if form == "compatibility" and run("openssl", "list", "-providers", "-provider", "legacy").returncode != 0:
        pytest.skip("needs OpenSSL's legacy provider (Debian 13: openssl-provider-legacy; see .ci/run)")


def test_the_page_names_both_files_after_the_id_and_serial(saved):
    assert saved.standard.name == f"certportal-alice-admin-{saved.serial}.p12"
    assert saved.compatibility.name == f"certportal-alice-admin-{saved.serial}-compat.p12"


def test_the_file_check_on_the_issued_screen_says_when_the_password_is_wrong(saved):
    assert "does not open this file" in saved.check_messages["standard, wrong password"]
    assert "not your login password" in saved.check_messages["standard, wrong password"]
    assert "password is correct" in saved.check_messages["compatibility, right password"]
    assert "not a certificate file" in saved.check_messages["not a certificate file"]


@pytest.mark.parametrize("form", FORMS)
def test_python_cryptography_reads_the_key_the_certificate_and_its_chain(saved, form):
    p12 = pkcs12.load_pkcs12(getattr(saved, form).read_bytes(), FILE_PASSWORD.encode())
    assert p12.cert.certificate.serial_number == int(saved.serial, 16)
    assert p12.cert.friendly_name.decode() == saved.friendly_name
    assert portal_ca.spki_sha256(p12.key.public_key()) == saved.public_key_sha256
    assert [c.certificate for c in p12.additional_certs] == saved.chain
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(getattr(saved, form).read_bytes(), WRONG_PASSWORD.encode())


@pytest.mark.parametrize(("form", "provider"), [("standard", []), ("compatibility", ["-legacy"])])
def test_openssl_3_opens_each_file_with_its_provider(saved, form, provider, tmp_path):
    needs_openssl(form)
    path = str(getattr(saved, form))
    opened = run("openssl", "pkcs12", *provider, "-in", path, "-passin", f"pass:{FILE_PASSWORD}", "-nodes",
                 "-out", str(tmp_path / "out.pem"))
    assert opened.returncode == 0, opened.stderr
    pem = (tmp_path / "out.pem").read_bytes()
    assert pem.count(b"BEGIN CERTIFICATE") == 3 and b"BEGIN PRIVATE KEY" in pem
    key = serialization.load_pem_private_key(pem, password=None)
    assert portal_ca.spki_sha256(key.public_key()) == saved.public_key_sha256
    assert run("openssl", "pkcs12", *provider, "-in", path, "-passin", f"pass:{WRONG_PASSWORD}",
               "-nodes").returncode != 0


def test_the_compatibility_file_needs_openssls_legacy_provider_like_openssls_own(saved):
    """RC2-40 on the certificates, exactly as `-export -legacy` writes: OpenSSL 3 needs -legacy."""
    needs_openssl("compatibility")
    without = run("openssl", "pkcs12", "-in", str(saved.compatibility), "-passin", f"pass:{FILE_PASSWORD}",
                  "-nodes", "-noout")
    assert without.returncode != 0 and "RC2" in without.stderr.upper()


@pytest.mark.parametrize("form", FORMS)
def test_nss_pk12util_imports_key_and_chain(saved, form, tmp_path):
    needs("pk12util")
    needs("certutil")
    nssdb = f"sql:{tmp_path}"
    assert run("certutil", "-N", "-d", nssdb, "--empty-password").returncode == 0
    wrong = run("pk12util", "-i", str(getattr(saved, form)), "-d", nssdb, "-W", WRONG_PASSWORD)
    assert wrong.returncode != 0
    imported = run("pk12util", "-i", str(getattr(saved, form)), "-d", nssdb, "-W", FILE_PASSWORD)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    keys = run("certutil", "-K", "-d", nssdb).stdout
    assert re.search(rf"\bec\b.*{re.escape(saved.friendly_name)}", keys), keys
    listed = run("certutil", "-L", "-d", nssdb).stdout
    assert saved.friendly_name in listed
    assert "Client Certificate CA" in listed and "Root CA" in listed  # the chain came along


@pytest.mark.parametrize("form", FORMS)
def test_java_keytool_lists_a_private_key_entry_with_the_whole_chain(saved, form):
    needs("keytool")
    path = str(getattr(saved, form))
    listed = run("keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass", FILE_PASSWORD)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert f"Alias name: {saved.friendly_name.lower()}" in listed.stdout  # Java lower-cases aliases
    assert "Entry type: PrivateKeyEntry" in listed.stdout
    assert "Certificate chain length: 3" in listed.stdout
    assert f"Serial number: {saved.serial.lower().lstrip('0')}" in listed.stdout
    wrong = run("keytool", "-list", "-storetype", "PKCS12", "-keystore", path, "-storepass", WRONG_PASSWORD)
    assert wrong.returncode != 0 and "password was incorrect" in wrong.stdout + wrong.stderr


@pytest.mark.parametrize("form", FORMS)
def test_gnutls_certtool_verifies_the_mac_and_decrypts_the_key(saved, form, tmp_path):
    needs("certtool")
    path = str(getattr(saved, form))
    info = run("certtool", "--p12-info", "--inder", "--infile", path, "--password", FILE_PASSWORD)
    assert info.returncode == 0, info.stdout + info.stderr
    assert info.stdout.count("Type: Certificate") == 3
    assert f"Friendly name: {saved.friendly_name}" in info.stdout
    encrypted_key = re.search(r"-----BEGIN ENCRYPTED PRIVATE KEY-----.*?-----END ENCRYPTED PRIVATE KEY-----\n",
                              info.stdout, re.S)
    (tmp_path / "key.pem").write_text(encrypted_key.group(0))
    key = run("certtool", "--key-info", "--pkcs8", "--password", FILE_PASSWORD, "--infile", str(tmp_path / "key.pem"))
    assert key.returncode == 0, key.stdout + key.stderr
    assert f"sha256:{saved.public_key_sha256}" in key.stdout
    wrong = run("certtool", "--p12-info", "--inder", "--infile", path, "--password", WRONG_PASSWORD)
    assert wrong.returncode != 0 and "verify_mac" in wrong.stdout + wrong.stderr


@pytest.fixture(scope="module")
def openssls_own(saved, tmp_path_factory):
    """The files `openssl pkcs12 -export` and `-export -legacy` make from the same key, certificate and chain."""
    needs_openssl("compatibility")
    folder = tmp_path_factory.mktemp("openssl")
    p12 = pkcs12.load_pkcs12(saved.standard.read_bytes(), FILE_PASSWORD.encode())
    (folder / "key.pem").write_bytes(p12.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "cert.pem").write_bytes(p12.cert.certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "chain.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in saved.chain))
    made = {}
    for form, options in [("standard", []), ("compatibility", ["-legacy"])]:
        out = folder / f"{form}.p12"
        result = run("openssl", "pkcs12", "-export", *options, "-inkey", str(folder / "key.pem"),
                     "-in", str(folder / "cert.pem"), "-certfile", str(folder / "chain.pem"),
                     "-name", saved.friendly_name, "-passout", f"pass:{FILE_PASSWORD}", "-out", str(out))
        assert result.returncode == 0, result.stderr
        made[form] = out
    return made


@pytest.mark.parametrize("form", FORMS)
def test_every_parameter_matches_the_file_openssl_makes(saved, openssls_own, form):
    ours = describe(getattr(saved, form).read_bytes(), FILE_PASSWORD)
    theirs = describe(openssls_own[form].read_bytes(), FILE_PASSWORD)
    assert ours == theirs
    # And what that means, spelled out:
    assert ours["der"] and ours["mac"]["verifies"]
    certificates, key = ours["contents"]
    assert [bag["subject"].split(",")[0] for bag in certificates["bags"]] == [
        "CN=alice-admin", "CN=Certportal Demo Bank Client Certificate CA", "CN=Certportal Demo Bank Root CA",
    ]
    # In DER's order of a SET OF, which the comparison above holds; here only what they are.
    assert sorted(key["bags"][0]["attributes"]) == sorted([
        ("1.2.840.113549.1.9.20", [("BMPString", saved.friendly_name)]),
        ("1.2.840.113549.1.9.21", [("OCTET STRING", "SHA-1 of the certificate")]),
    ])
    if form == "standard":
        expected = {"scheme": "1.2.840.113549.1.5.13", "kdf": "1.2.840.113549.1.5.12", "salt_length": 8,
                    "iterations": 2048, "key_length": None, "prf": "1.2.840.113549.2.9",  # hmacWithSHA256
                    "prf_parameters": "0x0500", "cipher": "2.16.840.1.101.3.4.1.42", "iv_length": 16}  # AES-256-CBC
        assert certificates["encryption"] == key["bags"][0]["encryption"] == expected
        assert ours["mac"] | {"verifies": True} == {"digest": "2.16.840.1.101.3.4.2.1", "digest_parameters": True,
                                                   "length": 32, "salt_length": 8, "iterations": 2048,
                                                   "verifies": True}
    else:
        assert certificates["encryption"] == {"scheme": "1.2.840.113549.1.12.1.6", "salt_length": 8,
                                              "iterations": 2048}  # pbeWithSHAAnd40BitRC2-CBC
        assert key["bags"][0]["encryption"] == {"scheme": "1.2.840.113549.1.12.1.3", "salt_length": 8,
                                                "iterations": 2048}  # pbeWithSHAAnd3-KeyTripleDES-CBC
        assert ours["mac"]["digest"] == "1.3.14.3.2.26" and ours["mac"]["iterations"] == 2048  # SHA-1
