from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from certificates.models import Certificate, RevocationReason
from certificates.services import RevocationRefused, revoke_certificate


class Command(BaseCommand):
    help = "Revoke a certificate by serial number (hex) with an RFC 5280 reason; publishes a new CRL."

    def add_arguments(self, parser) -> None:
        parser.add_argument("serial", help="serial number in hex, as the admin shows it")
        reasons = [value for value, _label in RevocationReason.for_one_certificate()]
        parser.add_argument("--reason", required=True, choices=reasons)

    def handle(self, *args, serial: str, reason: str, **options) -> None:
        normalised = serial.replace(":", "").upper().lstrip("0")
        try:
            certificate = Certificate.objects.get(serial_number=normalised)
        except Certificate.DoesNotExist:
            raise CommandError(f"No certificate with serial number {serial}") from None
        try:
            with translation.override("en"):  # an operator's command speaks English throughout
                revoke_certificate(certificate=certificate, reason=reason, by=None)
        except (RevocationRefused, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Revoked {certificate.serial_number} ({reason})"))
