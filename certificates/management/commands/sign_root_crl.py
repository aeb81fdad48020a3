"""The root key's routine duty: sign its CRL for a long validity (the key ceremony in deploy/README.md).

This is the only command after `init_ca` that needs the root's secret. It reads
CERTPORTAL_ROOT_CA_PASSPHRASE from the environment or, when that is not set and a
terminal is attached, asks for it; no service is ever given it.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from certificates.ca import CANotInitialised
from certificates.crl import publish_crl, sign_root_crl
from certificates.models import RevocationReason
from certificates.services import revoke_issuing_ca as revoke_the_issuing_ca

from .export_crl import replace_file

# The issuing CA's own reasons (ca_compromise is what its certificates get when its key is compromised).
CA_REASONS = [value for value, _label in RevocationReason.for_one_certificate()]


def root_passphrase() -> str | None:
    """From the setting, or typed at the prompt; None when neither is possible."""
    if settings.KEY_BACKEND != "encrypted" or settings.ROOT_CA_PASSPHRASE:
        return settings.ROOT_CA_PASSPHRASE
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("Root CA passphrase (CERTPORTAL_ROOT_CA_PASSPHRASE): ") or None


def root_pin() -> str | None:
    """The PIN of the root's own PKCS#11 token, from the setting or typed at the prompt."""
    if settings.KEY_BACKEND != "pkcs11" or not settings.PKCS11_ROOT_TOKEN_LABEL or settings.PKCS11_ROOT_PIN:
        return settings.PKCS11_ROOT_PIN
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("Root token PIN (CERTPORTAL_PKCS11_ROOT_PIN): ") or None


class Command(BaseCommand):
    help = "Sign the root CA's CRL with the offline root key (yearly, and to revoke the issuing CA)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=365, help="validity of the CRL in days (default 365)")
        parser.add_argument("--out", type=Path, help="also write the CRL (DER) to this file")
        parser.add_argument(
            "--revoke-issuing-ca", choices=CA_REASONS, metavar="REASON",
            help=f"revoke the issuing CA, and every certificate it issued, with this reason ({', '.join(CA_REASONS)})",
        )

    def handle(self, *args, days: int, out: Path | None, revoke_issuing_ca: str | None, **options) -> None:
        if not 1 <= days <= 3 * 365:
            raise CommandError("--days must be between 1 and 1095")
        now = timezone.now().replace(microsecond=0)  # as X.509 writes it: the CRL and OCSP say the same time
        revoked = 0
        with override_settings(ROOT_CA_PASSPHRASE=root_passphrase(), PKCS11_ROOT_PIN=root_pin()):
            try:
                # One transaction: without the root's secret the CA is not revoked either.
                with transaction.atomic():
                    if revoke_issuing_ca:
                        revoked = revoke_the_issuing_ca(reason=revoke_issuing_ca, now=now)
                    root = sign_root_crl(days=days, now=now)
            except (CANotInitialised, ImproperlyConfigured) as error:
                raise CommandError(str(error)) from None
        if out is not None:
            try:
                replace_file(out, bytes(root.crl_der))
            except OSError as error:
                raise CommandError(f"Cannot write {out}: {error.strerror}") from None
        if revoke_issuing_ca:
            # The issuing CA's own CRL lists its certificates at once too, for relying parties that
            # read only that one; a machine without the issuing key leaves it to the hourly refresh.
            try:
                publish_crl(now=now)
            except ImproperlyConfigured as error:
                self.stderr.write(f"The issuing CA's CRL was not re-signed here ({error}): it lists them from its "
                                  "next hourly re-signing; login, OCSP and the root's CRL refuse them already.")
            self.stdout.write(self.style.WARNING(
                f"The issuing CA is revoked ({revoke_issuing_ca}), and {revoked} certificate(s) it issued with it. "
                "It certifies nothing more (deploy/README.md, Revoking the issuing CA)."
            ))
        self.stdout.write(self.style.SUCCESS(
            f"Root CRL #{root.last_crl_number}, next update {root.crl_next_update:%Y-%m-%d %H:%M %Z}"
        ))
