from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.jobs import recording
from certificates.ca import CANotInitialised
from certificates.crl import current_crl
from certificates.tasks import REFRESH_CRL


class Command(BaseCommand):
    help = "Re-sign the CRL if its nextUpdate is near (twin of the hourly task)."

    def handle(self, *args, **options) -> None:
        try:
            with recording(REFRESH_CRL) as detail:
                crl = current_crl()
                detail["crl_number"] = crl.number
        except (CANotInitialised, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"CRL #{crl.number}, next update {crl.next_update:%Y-%m-%d %H:%M %Z}")
