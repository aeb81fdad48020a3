"""Write the CRLs nginx checks client certificates against (`ssl_crl`), as one PEM file.

nginx checks CRLs for the whole chain (X509_V_FLAG_CRL_CHECK_ALL), so the file holds the
issuing CA's CRL (the one served at /pki/crl, re-signed first if its nextUpdate is near)
and a CRL of the root, which revokes nothing. Run it hourly and reload nginx afterwards
(deploy/certportal-crl.timer); an expired CRL makes nginx refuse every certificate.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from certificates import ca
from certificates.ca import CANotInitialised
from certificates.crl import current_crl
from certificates.models import CertificateAuthority

ROOT_CRL_VALIDITY = timedelta(days=7)


def root_crl(*, now: datetime) -> x509.CertificateRevocationList:
    """An empty CRL signed by the root: the issuing CA is not revoked."""
    with transaction.atomic():
        root = ca.unlock(CertificateAuthority.Kind.ROOT)
        record = CertificateAuthority.objects.select_for_update().get(pk=root.record.pk)
        record.last_crl_number += 1
        record.save(update_fields=["last_crl_number"])
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.certificate.subject)
            .last_update(now)
            .next_update(now + ROOT_CRL_VALIDITY)
            .add_extension(x509.CRLNumber(record.last_crl_number), critical=False)
            .add_extension(root.key_identifier, critical=False)
            .sign(root.private_key, hashes.SHA384())
        )


def crl_bundle_pem(*, now: datetime | None = None) -> bytes:
    now = now or timezone.now()
    issuing = x509.load_der_x509_crl(bytes(current_crl(now=now).der))
    return issuing.public_bytes(serialization.Encoding.PEM) + root_crl(now=now).public_bytes(
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
        except (CANotInitialised, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        try:
            replace_file(output, pem)
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror}") from None
        self.stdout.write(f"wrote {output}")
