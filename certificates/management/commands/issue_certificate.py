from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from certificates.ca import CANotInitialised
from certificates.csr import CertificateRefused
from certificates.models import Certificate
from certificates.services import issue_certificate


class Command(BaseCommand):
    help = "Issue a client certificate for an ID from a CSR file and print it in PEM."

    def add_arguments(self, parser) -> None:
        parser.add_argument("login_id")
        parser.add_argument("--csr", required=True, type=Path, help="CSR file, PEM or DER")

    def handle(self, *args, login_id: str, csr: Path, **options) -> None:
        try:
            user = User.objects.get(login_id=login_id)
        except User.DoesNotExist:
            raise CommandError(f"No ID {login_id!r}") from None
        try:
            data = csr.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {csr}: {error.strerror}") from None
        try:
            issuance = issue_certificate(user=user, csr=data, via=Certificate.Channel.OPERATOR)
        except CertificateRefused as refusal:
            raise CommandError(str(refusal.message)) from None
        except (CANotInitialised, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        if not issuance.created:
            self.stderr.write("This CSR was already certified; printing that certificate.")
        self.stdout.write(issuance.certificate.pem, ending="")
