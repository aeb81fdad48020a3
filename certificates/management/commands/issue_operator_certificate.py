import getpass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from certificates.ca import CANotInitialised
from certificates.csr import CertificateRefused
from certificates.operator_access import (
    MIN_PKCS12_PASSWORD_LENGTH,
    issue_operator_certificate,
    issue_operator_pkcs12,
    write_private_file,
)


class Command(BaseCommand):
    help = (
        "Issue (or renew) a bank operator's certificate for the operators' site: from the operator's CSR "
        "(printed in PEM), or with a new key in a password-protected PKCS#12 file (mode 0600)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("login_id", help="the operator's login ID (a staff ID without a contract)")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csr", type=Path, help="the operator's CSR file, PEM or DER (preferred: the key "
                                                     "stays on the operator's machine)")
        source.add_argument("--pkcs12", type=Path, metavar="FILE", help="write a new key and its certificate here")
        parser.add_argument("--password-file", type=Path,
                            help="the PKCS#12 file's password, first line of this file (else it is asked for)")

    def handle(self, *args, login_id: str, csr: Path | None, pkcs12: Path | None, password_file: Path | None,
               **options) -> None:
        operator = User.objects.filter(login_id=login_id).first()
        if operator is None:
            raise CommandError(f"No ID {login_id!r}")
        if not operator.is_operator:
            raise CommandError(f"{login_id} is not a bank operator; customers obtain their certificates on the portal.")
        issued_by = f"manage.py issue_operator_certificate by {getpass.getuser()}"
        try:
            if csr is not None:
                issuance = issue_operator_certificate(operator=operator, csr=_read(csr), issued_by=issued_by)
                self.stdout.write(issuance.certificate.pem, ending="")
                return
            bundle = issue_operator_pkcs12(operator=operator, password=self._password(password_file),
                                           issued_by=issued_by)
        except CertificateRefused as refusal:
            raise CommandError(str(refusal.message)) from None
        except (CANotInitialised, ImproperlyConfigured, ValueError) as error:
            raise CommandError(str(error)) from None
        try:
            write_private_file(pkcs12, bundle.pkcs12)
        except OSError as error:
            raise CommandError(f"Cannot write {pkcs12}: {error.strerror}") from None
        self.stdout.write(
            f"Wrote {pkcs12} (mode 0600): certificate {bundle.certificate.serial_number} for {login_id}, "
            f"valid until {bundle.certificate.not_after:%Y-%m-%d}. Import it into the operator's browser; "
            "the first login with it revokes the operator's older certificates."
        )

    def _password(self, password_file: Path | None) -> str:
        if password_file is not None:
            lines = _read(password_file).decode().splitlines()
            return lines[0] if lines else ""
        try:
            password = getpass.getpass(f"Password for the PKCS#12 file ({MIN_PKCS12_PASSWORD_LENGTH}+ characters): ")
            again = getpass.getpass("The same again: ")
        except (EOFError, OSError):
            raise CommandError("No terminal to ask for the file's password: use --password-file.") from None
        if password != again:
            raise CommandError("The two passwords differ.")
        return password


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}") from None
