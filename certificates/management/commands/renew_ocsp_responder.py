from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from certificates.ca import CANotInitialised, IssuingCAStopped
from certificates.ocsp import renew_responder


class Command(BaseCommand):
    help = "Certify a new OCSP responder key if the current one is due (twin of the hourly task)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="certify a new key even if the current one is not due")

    def handle(self, *args, force: bool = False, **options) -> None:
        try:
            record, created = renew_responder(force=force)
        except (CANotInitialised, IssuingCAStopped, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        state = "new" if created else "current"
        self.stdout.write(f"OCSP responder certificate ({state}) valid until {record.not_after:%Y-%m-%d %H:%M %Z}")
