"""Write the CRLs nginx checks client certificates against (`ssl_crl`), as one PEM file.

nginx checks CRLs for the whole chain (X509_V_FLAG_CRL_CHECK_ALL), so the file holds the
issuing CA's CRL (the one served at /pki/crl, re-signed first if its nextUpdate is near)
and the root's CRL as its operator signed it offline (`manage.py sign_root_crl`): this
hourly job never needs the root key. Run it hourly and reload nginx afterwards
(deploy/certportal-crl.timer); an expired CRL makes nginx refuse every certificate.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from certificates.ca import CANotInitialised
from certificates.crl import RootCrlMissing, current_crl, current_root_crl
from certificates.models import CertificateAuthority

# The root's CRL is signed offline for a year or so; warn the operator well before it runs out.
ROOT_CRL_WARNING = timedelta(days=30)


def crl_bundle_pem(*, now: datetime | None = None) -> bytes:
    """The issuing CA's CRL (re-signed here if due, with the issuing key) and the root's, as signed offline."""
    now = now or timezone.now()
    issuing = x509.load_der_x509_crl(bytes(current_crl(now=now).der))
    return issuing.public_bytes(serialization.Encoding.PEM) + current_root_crl(now=now).public_bytes(
        serialization.Encoding.PEM
    )


def replace_file(path: Path, content: bytes) -> None:
    """Replace `path` in one step, so that nginx never reads half a file; leave no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".crl-", delete=False) as temporary:
        try:
            temporary.write(content)
            temporary.close()
            os.chmod(temporary.name, 0o644)
            os.replace(temporary.name, path)
        finally:
            Path(temporary.name).unlink(missing_ok=True)  # already gone once it has replaced `path`


class Command(BaseCommand):
    help = "Write the issuing and root CRLs as PEM for nginx's ssl_crl (run hourly, then reload nginx)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("output", type=Path, help="nginx's ssl_crl file, e.g. /var/lib/certportal/crl.pem")

    def handle(self, *args, output: Path, **options) -> None:
        try:
            pem = crl_bundle_pem()
        except (CANotInitialised, RootCrlMissing, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        root = CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ROOT)
        if root.crl_next_update - timezone.now() < ROOT_CRL_WARNING:
            self.stderr.write(
                f"The root's CRL expires at {root.crl_next_update:%Y-%m-%d %H:%M %Z}: its operator must run "
                "`manage.py sign_root_crl` before then, or nginx refuses every certificate."
            )
        try:
            replace_file(output, pem)
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror}") from None
        self.stdout.write(f"wrote {output}")
