from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from certificates.ca import CANotInitialised
from certificates.crl import current_crl


class Command(BaseCommand):
    help = "Re-sign the CRL if its nextUpdate is near (twin of the hourly task)."

    def handle(self, *args, **options) -> None:
        try:
            crl = current_crl()
        except (CANotInitialised, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"CRL #{crl.number}, next update {crl.next_update:%Y-%m-%d %H:%M %Z}")
