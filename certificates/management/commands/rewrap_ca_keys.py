"""Re-encrypt the CA keys under their own secrets at the current KDF cost (an upgrade step, run once).

Keys from earlier versions are PKCS#8 under one passphrase (CERTPORTAL_CA_PASSPHRASE) with
2,048 PBKDF2 rounds. This opens each key with its own secret or, failing that, with the old
one, and wraps it again: the root under CERTPORTAL_ROOT_CA_PASSPHRASE, the issuing key under
CERTPORTAL_ISSUING_CA_PASSPHRASE, both at keys.KDF_ITERATIONS. The keys themselves, and so
the CA certificates, do not change.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings

from certificates import keys
from certificates.models import CertificateAuthority

from .sign_root_crl import root_passphrase


def _open(authority: CertificateAuthority):
    candidates = [keys.passphrase_for(authority.kind)]
    if settings.LEGACY_CA_PASSPHRASE:
        candidates.append(settings.LEGACY_CA_PASSPHRASE)
    for passphrase in candidates:
        try:
            return keys.decrypt_private_key(authority.encrypted_key_pem, passphrase, "")
        except ImproperlyConfigured:
            continue
    raise CommandError(
        f"Neither {keys.passphrase_setting(authority.kind)} nor CERTPORTAL_CA_PASSPHRASE decrypts the "
        f"{authority.kind} CA key."
    )


class Command(BaseCommand):
    help = "Re-encrypt both CA keys under their own passphrases at 600,000 PBKDF2 rounds (needs the root's secret)."

    def handle(self, *args, **options) -> None:
        if settings.KEY_BACKEND != "encrypted":
            raise CommandError("Only keys of the encrypted backend are wrapped; PKCS#11 keys stay in their token.")
        with override_settings(ROOT_CA_PASSPHRASE=root_passphrase()), transaction.atomic():
            try:
                for authority in CertificateAuthority.objects.select_for_update().order_by("kind"):
                    key = _open(authority)
                    if key.public_key() != authority.certificate.public_key():
                        raise CommandError(f"The {authority.kind} key does not match its CA certificate.")
                    before = keys.kdf_iterations(authority.encrypted_key_pem)
                    authority.encrypted_key_pem = keys.encrypt_private_key(key, keys.passphrase_for(authority.kind))
                    authority.save(update_fields=["encrypted_key_pem"])
                    self.stdout.write(
                        f"{authority.kind}: {before:,} → {keys.KDF_ITERATIONS:,} PBKDF2 rounds, "
                        f"under {keys.passphrase_setting(authority.kind)}"
                    )
            except ImproperlyConfigured as error:
                raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS("Done: remove CERTPORTAL_CA_PASSPHRASE from every environment."))
