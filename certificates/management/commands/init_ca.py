"""The key ceremony's first step: create the root and issuing CA keys and certificates once.

The root's secret (CERTPORTAL_ROOT_CA_PASSPHRASE, from the environment or the prompt) is
needed here and by `sign_root_crl` only. The first root CRL is signed at the same time.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from certificates import keys
from certificates.ca import create_ca, unlock
from certificates.crl import sign_root_crl
from certificates.models import CertificateAuthority

from .sign_root_crl import root_passphrase, root_pin

FIRST_ROOT_CRL_DAYS = 365


class Command(BaseCommand):
    help = "Create the portal's two-tier CA (root and issuing CA) once, and sign the root's first CRL."

    def handle(self, *args, **options) -> None:
        if CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING).exists():
            self._check_existing()
            return
        with override_settings(ROOT_CA_PASSPHRASE=root_passphrase(), PKCS11_ROOT_PIN=root_pin()):
            try:
                issuing, created = create_ca()
                if created:
                    sign_root_crl(days=FIRST_ROOT_CRL_DAYS)
            except ImproperlyConfigured as error:
                raise CommandError(str(error)) from None
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created the CA: {issuing.subject}"))
        else:
            self._check_existing()

    def _check_existing(self) -> None:
        # An existing CA is only usable if this process's secret opens its issuing key: say so now,
        # not at first issuance. The root key is checked only when its secret is given.
        root_given = settings.ROOT_CA_PASSPHRASE or settings.PKCS11_ROOT_PIN
        names = [keys.ISSUING] + ([keys.ROOT] if root_given else [])
        try:
            for name in names:
                authority = unlock(name)
                public_key = keys.backend().public_key(name, authority.record.encrypted_key_pem)
                if public_key != authority.certificate.public_key():
                    raise CommandError(f"The {name} key does not match the {name} CA certificate.")
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        issuing = CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ISSUING)
        self.stdout.write(f"The CA already exists ({issuing.subject}); nothing changed.")
