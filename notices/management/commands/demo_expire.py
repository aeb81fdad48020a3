"""Debug only: bring a demo ID's certificate close to its expiry, to see the renewal guidance and a
reminder without touching the clock.

Honest about what it does: a certificate's notAfter is signed into the file the browser holds,
so a date cannot be moved in the database alone. This command has the portal's CA issue the ID a
new certificate that really expires in --days days (a key made here, a PKCS#12 file written for
the browser), revokes the ID's other certificates as superseded (nginx and the portal refuse them
from then on), and runs the daily reminder job, delivering what it queued at once so that the
e-mails appear in var/mail even with no worker running.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.jobs import recording
from accounts.management.commands.seed_demo import DEMO_CONTRACT
from accounts.models import User
from certificates import ca
from certificates.models import Certificate, RevocationReason
from certificates.services import issue_certificate, revoke_certificate
from notices.reminders import Outcome, TryLater, deliver_reminder, run_reminder_job
from notices.tasks import SEND_EXPIRY_REMINDERS, enqueue


class Command(BaseCommand):
    help = "Debug only: issue a demo ID a certificate expiring in --days days, then run the reminder job."

    def add_arguments(self, parser) -> None:
        parser.add_argument("login_id", help="an ID of the demo contract (manage.py seed_demo)")
        parser.add_argument("--days", type=int, default=25, help="days until the new certificate expires (1-60)")
        parser.add_argument("--out", help="where to write the PKCS#12 file (default var/demo/LOGIN_ID.p12)")

    def handle(self, *args, login_id: str, days: int, out: str | None, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_expire issues demo certificates and sends e-mails; refusing outside debug mode.")
        if not 1 <= days <= 60:
            raise CommandError(f"--days must be between 1 and 60, not {days}")
        user = User.objects.filter(login_id=login_id, contract__number=DEMO_CONTRACT[0]).first()
        if user is None:
            raise CommandError(f"{login_id!r} is not an ID of the demo contract {DEMO_CONTRACT[0]} (seed_demo)")
        now = timezone.now()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, login_id)]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        with transaction.atomic():
            # Revoked first: one issued moments ago and unused would otherwise hold the ID's issuance slot.
            for older in user.certificates.not_revoked().filter(not_after__gt=now):
                revoke_certificate(certificate=older, reason=RevocationReason.SUPERSEDED, by=None, now=now)
            certificate = issue_certificate(
                user=user, csr=csr, via=Certificate.Channel.OPERATOR, now=now, not_after=now + timedelta(days=days)
            ).certificate
        password = secrets.token_urlsafe(9)
        path = Path(out) if out else Path(settings.VAR_DIR) / "demo" / f"{login_id}.p12"
        path.parent.mkdir(parents=True, exist_ok=True)
        # As the enrollment page writes it: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC), SHA-256 MAC.
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(100_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            login_id.encode(), key, certificate.x509, [ca.unlock().certificate], encryption  # chain: the issuing CA
        ))
        expires = timezone.localtime(certificate.not_after)
        self.stdout.write(
            f"Issued {login_id} certificate {certificate.serial_number}, expiring {expires:%Y-%m-%d %H:%M} JST "
            f"({days} days); its other certificates are revoked.\n"
            f"Import {path} into the browser (password: {password}), restart the browser, log in as {login_id}."
        )
        with recording(SEND_EXPIRY_REMINDERS) as detail:
            result = run_reminder_job(enqueue=enqueue, now=timezone.now())
            detail.update(result.summary())
        sent = 0
        for reminder_id in result.queued:
            with contextlib.suppress(TryLater):  # the provider failed: the queued task (the worker) tries again
                sent += deliver_reminder(reminder_id=reminder_id) == Outcome.SENT
        self.stdout.write(
            f"Reminder job: {len(result.queued)} e-mail(s) queued, {sent} sent now "
            f"(with make run: the newest files in {settings.EMAIL_FILE_PATH})."
        )
