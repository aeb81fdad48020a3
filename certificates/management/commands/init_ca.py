from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from certificates.ca import create_ca, unlock
from certificates.models import CertificateAuthority


class Command(BaseCommand):
    help = "Create the portal's two-tier CA (root and issuing CA) once."

    def handle(self, *args, **options) -> None:
        issuing, created = create_ca()
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created the CA: {issuing.subject}"))
        else:
            # An existing CA is only usable if this passphrase opens its keys: say so now, not at first issuance.
            try:
                for kind in CertificateAuthority.Kind.values:
                    unlock(kind)
            except ImproperlyConfigured as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"The CA already exists ({issuing.subject}); nothing changed.")
