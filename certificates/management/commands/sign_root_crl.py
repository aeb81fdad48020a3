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
from django.test.utils import override_settings

from certificates.ca import CANotInitialised
from certificates.crl import sign_root_crl
from certificates.models import RevocationReason

from .export_crl import replace_file


def root_passphrase() -> str | None:
    """From the setting, or typed at the prompt; None when neither is possible."""
    if settings.KEY_BACKEND != "encrypted" or settings.ROOT_CA_PASSPHRASE:
        return settings.ROOT_CA_PASSPHRASE
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("Root CA passphrase (CERTPORTAL_ROOT_CA_PASSPHRASE): ") or None


class Command(BaseCommand):
    help = "Sign the root CA's CRL with the offline root key (yearly, and to revoke the issuing CA)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=365, help="validity of the CRL in days (default 365)")
        parser.add_argument("--out", type=Path, help="also write the CRL (DER) to this file")
        parser.add_argument(
            "--revoke-issuing-ca", choices=RevocationReason.values, metavar="REASON",
            help=f"revoke the issuing CA with this reason ({', '.join(RevocationReason.values)})",
        )

    def handle(self, *args, days: int, out: Path | None, revoke_issuing_ca: str | None, **options) -> None:
        if not 1 <= days <= 3 * 365:
            raise CommandError("--days must be between 1 and 1095")
        with override_settings(ROOT_CA_PASSPHRASE=root_passphrase()):
            try:
                root = sign_root_crl(days=days, revoke_issuing_ca=revoke_issuing_ca)
            except (CANotInitialised, ImproperlyConfigured) as error:
                raise CommandError(str(error)) from None
        if out is not None:
            try:
                replace_file(out, bytes(root.crl_der))
            except OSError as error:
                raise CommandError(f"Cannot write {out}: {error.strerror}") from None
        if revoke_issuing_ca:
            self.stdout.write(self.style.WARNING(f"The issuing CA is revoked ({revoke_issuing_ca})."))
        self.stdout.write(self.style.SUCCESS(
            f"Root CRL #{root.last_crl_number}, next update {root.crl_next_update:%Y-%m-%d %H:%M %Z}"
        ))
