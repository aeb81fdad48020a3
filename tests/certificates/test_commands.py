"""The operators' command twins: init_ca, export_ca, issue_certificate, revoke_certificate, seed_demo."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import translation

from accounts.models import AuditEntry, Contract, User
from certificates.keys import kdf_iterations
from certificates.models import Certificate, CertificateAction, CertificateAuthority, RevocationList, RevocationReason
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db



ENCRYPTED_HEADER = "-----BEGIN ENCRYPTED PRIVATE KEY-----"


def run(*args, **options) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def ca_rows() -> list[tuple]:
    return list(
        CertificateAuthority.objects.order_by("kind").values_list(
            "pk", "kind", "subject", "certificate_pem", "encrypted_key_pem", "created_at"
        )
    )


# --- init_ca and export_ca ----------------------------------------------------------------


def test_init_ca_creates_the_two_tier_ca_once_and_then_says_nothing_changed(db, key_ceremony):
    created, _ = run("init_ca")
    rows = ca_rows()
    again, _ = run("init_ca")

    assert "Created the CA" in created
    assert [row[1] for row in rows] == ["issuing", "root"]
    assert "nothing changed" in again
    assert ca_rows() == rows
    assert AuditEntry.objects.filter(action=CertificateAction.CA_CREATED).count() == 1


def test_ca_keys_are_stored_encrypted_and_open_only_with_their_own_passphrase(db, key_ceremony):
    run("init_ca")

    own = {"root": settings.ROOT_CA_PASSPHRASE, "issuing": settings.ISSUING_CA_PASSPHRASE}
    for authority in CertificateAuthority.objects.all():
        assert authority.encrypted_key_pem.startswith(ENCRYPTED_HEADER)
        assert "-----BEGIN PRIVATE KEY-----" not in authority.encrypted_key_pem
        assert kdf_iterations(authority.encrypted_key_pem) >= 600_000
        key = serialization.load_pem_private_key(authority.encrypted_key_pem.encode(), own[authority.kind].encode())
        assert key.public_key() == authority.certificate.public_key()
        other = own["issuing" if authority.kind == "root" else "root"]
        with pytest.raises(ValueError):  # one secret never opens the other key
            serialization.load_pem_private_key(authority.encrypted_key_pem.encode(), other.encode())
        with pytest.raises(TypeError):  # no passphrase, no key
            serialization.load_pem_private_key(authority.encrypted_key_pem.encode(), None)
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(authority.encrypted_key_pem.encode(), b"not-the-passphrase-at-all")


def test_export_ca_prints_the_issuing_ca_then_the_root_in_pem(db, key_ceremony):
    run("init_ca")
    out, _ = run("export_ca")

    assert out.count("-----BEGIN CERTIFICATE-----") == 2
    issuing, root = x509.load_pem_x509_certificates(out.encode())
    assert issuing.subject.rfc4514_string() == CertificateAuthority.objects.get(kind="issuing").subject
    assert root.subject == root.issuer
    issuing.verify_directly_issued_by(root)
    assert issuing.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert "PRIVATE KEY" not in out


def test_export_ca_before_init_ca_is_a_clear_error(db):
    with pytest.raises(CommandError, match="init_ca"):
        run("export_ca")


def test_init_ca_on_an_existing_ca_with_another_passphrase_says_the_passphrase_is_wrong(db, key_ceremony, settings):
    run("init_ca")
    rows = ca_rows()
    settings.ISSUING_CA_PASSPHRASE = "not-the-passphrase-it-was-created-with"

    with pytest.raises(CommandError, match="CERTPORTAL_ISSUING_CA_PASSPHRASE does not decrypt"):
        run("init_ca")
    settings.ISSUING_CA_PASSPHRASE, settings.ROOT_CA_PASSPHRASE = key_ceremony + "-issuing", "another-root-passphrase"
    with pytest.raises(CommandError, match="CERTPORTAL_ROOT_CA_PASSPHRASE does not decrypt"):
        run("sign_root_crl")
    assert ca_rows() == rows


def test_issue_certificate_and_refresh_crl_before_init_ca_are_clear_errors(bob, tmp_path):
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(make_csr()[0])

    with pytest.raises(CommandError, match="run `manage.py init_ca`"):
        run("issue_certificate", "bob-user", "--csr", str(csr_file))
    with pytest.raises(CommandError, match="run `manage.py init_ca`"):
        run("refresh_crl")
    assert not Certificate.objects.exists()


def manage(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
    return result


def test_no_plain_ca_key_is_written_to_disk_or_printed(tmp_path):
    """Create the CA in a fresh embedded installation and search every file and output for its keys."""
    var = tmp_path / "var"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("CERTPORTAL_", "DATABASE_URL"))},
        "CERTPORTAL_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "CERTPORTAL_ISSUING_CA_PASSPHRASE": "a-test-passphrase-of-some-length",
        "CERTPORTAL_ROOT_CA_PASSPHRASE": "a-test-root-passphrase-of-some-length",
        "CELERY_BROKER_URL": "filesystem://",
    }
    outputs = [manage("migrate", "--noinput", "-v0", env=env)]
    outputs += [manage("init_ca", env=env), manage("init_ca", env=env), manage("export_ca", env=env)]
    assert "nothing changed" in outputs[2].stdout

    import sqlite3

    with sqlite3.connect(tmp_path / "portal.sqlite3") as database:
        stored = database.execute("SELECT kind, encrypted_key_pem FROM certificates_certificateauthority").fetchall()
    assert sorted(kind for kind, _pem in stored) == ["issuing", "root"]
    secrets: list[bytes] = []
    for kind, pem in stored:
        assert pem.startswith(ENCRYPTED_HEADER)
        key = serialization.load_pem_private_key(pem.encode(), env[f"CERTPORTAL_{kind.upper()}_CA_PASSPHRASE"].encode())
        plain_der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        scalar = key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
        secrets += [plain_der, scalar, scalar.hex().encode()]

    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name.startswith("portal.sqlite3") for path in files)
    for path in files:
        content = path.read_bytes()
        assert b"-----BEGIN PRIVATE KEY-----" not in content, path
        assert b"-----BEGIN EC PRIVATE KEY-----" not in content, path
        assert not any(secret in content for secret in secrets), f"a plain CA key is in {path}"
    for output in outputs:
        assert "PRIVATE KEY" not in output.stdout + output.stderr


# --- issue_certificate and revoke_certificate --------------------------------------------------


def test_issue_certificate_prints_a_pem_certificate_for_the_login_id(ca, bob, tmp_path):
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(make_csr(common_name="someone-else")[0])

    out, _ = run("issue_certificate", "bob-user", "--csr", str(csr_file))

    cert = x509.load_pem_x509_certificate(out.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bob-user"
    certificate = Certificate.objects.get(owner=bob)
    assert certificate.issued_via == Certificate.Channel.OPERATOR
    assert f"{cert.serial_number:X}" == certificate.serial_number


def test_issue_certificate_with_the_same_csr_again_prints_the_same_certificate(ca, bob, tmp_path):
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(make_csr()[0])

    first, _ = run("issue_certificate", "bob-user", "--csr", str(csr_file))
    again, err = run("issue_certificate", "bob-user", "--csr", str(csr_file))

    assert again == first
    assert "already certified" in err
    assert Certificate.objects.count() == 1


def test_issue_certificate_for_an_unknown_id_is_a_clear_error(ca, tmp_path):
    csr_file = tmp_path / "x.csr"
    csr_file.write_bytes(make_csr()[0])

    with pytest.raises(CommandError, match="No ID 'nobody-here'"):
        run("issue_certificate", "nobody-here", "--csr", str(csr_file))


def test_issue_certificate_with_an_unreadable_file_is_a_clear_error(ca, bob, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csr: No such file"):
        run("issue_certificate", "bob-user", "--csr", str(tmp_path / "missing.csr"))
    assert not Certificate.objects.exists()


def test_issue_certificate_with_a_bad_csr_is_a_clear_error(ca, bob, tmp_path):
    csr_file = tmp_path / "bad.csr"
    csr_file.write_text("this is not a CSR\n")

    with translation.override("en"), pytest.raises(CommandError, match=r"not a certificate signing request"):
        run("issue_certificate", "bob-user", "--csr", str(csr_file))
    assert not Certificate.objects.exists()


def test_issue_certificate_for_an_operator_is_refused(ca, olivia, tmp_path):
    csr_file = tmp_path / "o.csr"
    csr_file.write_bytes(make_csr()[0])

    with translation.override("en"), pytest.raises(CommandError, match="only to customers' IDs"):
        run("issue_certificate", "olivia-operator", "--csr", str(csr_file))


def test_revoke_certificate_revokes_by_serial_with_the_reason_and_publishes_a_crl(ca, bob, tmp_path):
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(make_csr()[0])
    run("issue_certificate", "bob-user", "--csr", str(csr_file))
    certificate = Certificate.objects.get()
    # As openssl prints it: colons, lower case, a leading zero.
    typed = ":".join(textwrap.wrap(f"0{certificate.serial_number}".lower(), 2))

    out, _ = run("revoke_certificate", typed, "--reason", "key_compromise")

    assert "Revoked" in out and certificate.serial_number in out
    certificate.refresh_from_db()
    assert certificate.revocation_reason == RevocationReason.KEY_COMPROMISE
    crl = x509.load_der_x509_crl(bytes(RevocationList.objects.latest("number").der))
    assert crl.get_revoked_certificate_by_serial_number(int(certificate.serial_number, 16)) is not None
    with pytest.raises(CommandError, match="already revoked"):
        run("revoke_certificate", certificate.serial_number, "--reason", "unspecified")


def test_crl_commands_and_revoke_certificate_with_another_passphrase_say_the_passphrase_is_wrong(
    ca, bob, settings, tmp_path
):
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(make_csr()[0])
    run("issue_certificate", "bob-user", "--csr", str(csr_file))
    certificate = Certificate.objects.get()
    settings.ISSUING_CA_PASSPHRASE = "not-the-passphrase-it-was-created-with"

    for command in (
        ["refresh_crl"],
        ["export_crl", str(tmp_path / "crl" / "crl.pem")],
        ["revoke_certificate", certificate.serial_number, "--reason", "key_compromise"],
    ):
        with pytest.raises(CommandError, match="CERTPORTAL_ISSUING_CA_PASSPHRASE does not decrypt"):
            run(*command)

    certificate.refresh_from_db()
    assert certificate.revoked_at is None
    assert not RevocationList.objects.exists()
    assert not (tmp_path / "crl").exists()


def test_revoke_certificate_refuses_an_unknown_serial_or_reason(ca, bob):
    with pytest.raises(CommandError, match="No certificate with serial number ABCDEF"):
        run("revoke_certificate", "ABCDEF", "--reason", "unspecified")
    with pytest.raises(CommandError, match="invalid choice"):
        run("revoke_certificate", "ABCDEF", "--reason", "because")


# --- seed_demo ---------------------------------------------------------------------------


def test_seed_demo_creates_the_demo_contract_once_and_prints_working_passwords(db, settings):
    settings.DEBUG = True
    out, _ = run("seed_demo")

    contract = Contract.objects.get()
    ids = {user.login_id: user for user in User.objects.all()}
    assert sorted((u.role, u.contract_id) for u in ids.values()) == [
        ("", None), ("administrator", contract.pk), ("user", contract.pk), ("user", contract.pk)
    ]
    operators = [user for user in ids.values() if user.is_operator]
    assert len(operators) == 1 and operators[0].is_superuser
    for line in out.splitlines():
        if "password:" in line:
            login_id, password = line.split()[0], line.rsplit("password:", 1)[1].strip()
            assert ids[login_id].check_password(password), login_id
    assert sum("password:" in line for line in out.splitlines()) == 4
    created = AuditEntry.objects.filter(action=AuditEntry.Action.ID_CREATED)
    assert sorted(created.values_list("subject__login_id", flat=True)) == sorted(ids)

    again, _ = run("seed_demo")
    assert "nothing changed" in again
    assert User.objects.count() == 4 and Contract.objects.count() == 1


def test_seed_demo_refuses_outside_debug_mode(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="debug"):
        run("seed_demo")
    assert not User.objects.exists()


# --- operators' own certificates ---------------------------------------------------------


def test_issue_operator_certificate_certifies_an_operators_csr_and_audits_who_ran_it(ca, olivia, tmp_path):
    pem, key = make_csr(common_name="whatever the operator typed")
    csr_file = tmp_path / "olivia.csr"
    csr_file.write_bytes(pem)

    out, _ = run("issue_operator_certificate", "olivia-operator", "--csr", str(csr_file))

    issued = x509.load_pem_x509_certificate(out.encode())
    assert issued.public_key() == key.public_key()
    assert issued.subject.rfc4514_string().startswith("CN=olivia-operator,OU=Bank operators,")
    entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_ISSUED, subject=olivia)
    assert entry.detail["via"] == "operator_access"
    assert entry.detail["issued_by"].startswith("manage.py issue_operator_certificate by ")


def test_issue_operator_certificate_writes_a_pkcs12_only_its_owner_can_read(ca, olivia, tmp_path):
    from cryptography.hazmat.primitives.serialization import pkcs12

    password_file = tmp_path / "password"
    password_file.write_text("Operator-file-2026\n")
    bundle = tmp_path / "olivia.p12"

    out, _ = run("issue_operator_certificate", "olivia-operator", "--pkcs12", str(bundle),
                 "--password-file", str(password_file))

    assert f"Wrote {bundle} (mode 0600)" in out
    assert os.stat(bundle).st_mode & 0o777 == 0o600
    key, certificate, chain = pkcs12.load_key_and_certificates(bundle.read_bytes(), b"Operator-file-2026")
    assert certificate.public_key() == key.public_key()
    assert Certificate.objects.get(owner=olivia).serial_number == f"{certificate.serial_number:X}"
    assert [ca_cert.subject for ca_cert in chain] == [ca.certificate.subject]


@pytest.mark.parametrize(
    ("login_id", "message"),
    [("bob-user", "is not a bank operator"), ("nobody-here", "No ID")],
)
def test_issue_operator_certificate_refuses_customers_and_unknown_ids(ca, bob, tmp_path, login_id, message):
    csr_file = tmp_path / "x.csr"
    csr_file.write_bytes(make_csr()[0])
    with pytest.raises(CommandError, match=message):
        run("issue_operator_certificate", login_id, "--csr", str(csr_file))
    assert not Certificate.objects.exists()


def test_issue_operator_certificate_refuses_a_short_file_password(ca, olivia, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("short\n")
    with pytest.raises(CommandError, match="at least 12"):
        run("issue_operator_certificate", "olivia-operator", "--pkcs12", str(tmp_path / "o.p12"),
            "--password-file", str(password_file))
    assert not (tmp_path / "o.p12").exists() and not Certificate.objects.exists()
