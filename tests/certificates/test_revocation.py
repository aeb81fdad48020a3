"""Revoking certificates and publishing the CRL at /pki/crl."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from cryptography import x509
from django.db import connections, transaction
from django.utils import translation

from accounts.models import AuditEntry
from certificates.crl import current_crl, publish_crl
from certificates.models import Certificate, CertificateAction, RevocationList, RevocationReason
from certificates.services import (
    RevocationRefused,
    issue_certificate,
    revoke_certificate,
    supersede_older_certificates,
)
from tests.support.net import uses_postgresql
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db



T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def issue(user, *, now=None) -> Certificate:
    return issue_certificate(user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR, now=now).certificate


def fetch_crl(client) -> x509.CertificateRevocationList:
    response = client.get("/pki/crl", secure=True)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    assert not response.content.startswith(b"-----BEGIN")  # DER, not PEM
    return x509.load_der_x509_crl(response.content)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def listed_reason(crl: x509.CertificateRevocationList, certificate: Certificate) -> x509.ReasonFlags | None:
    entry = crl.get_revoked_certificate_by_serial_number(int(certificate.serial_number, 16))
    assert entry is not None, f"{certificate.serial_number} is not on the CRL"
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def test_a_revoked_certificate_is_listed_with_its_reason_on_a_crl_signed_by_the_issuing_ca(
    client, ca, bob, charlie, olivia
):
    revoked, kept = issue(bob), issue(charlie)
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=olivia)

    crl = fetch_crl(client)
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.issuer == ca.certificate.subject
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest
    assert listed_reason(crl, revoked) == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(int(kept.serial_number, 16)) is None
    revoked.refresh_from_db()
    assert revoked.state == Certificate.State.REVOKED
    assert revoked.revocation_reason == RevocationReason.KEY_COMPROMISE


def test_a_crl_signed_by_another_key_would_not_verify(client, ca, bob, olivia):
    """The signature check above is meaningful: the root CA's key does not verify the CRL."""
    from certificates.ca import unlock
    from certificates.models import CertificateAuthority

    revoke_certificate(certificate=issue(bob), reason=RevocationReason.UNSPECIFIED, by=olivia)
    root = unlock(CertificateAuthority.Kind.ROOT)
    assert not fetch_crl(client).is_signature_valid(root.certificate.public_key())


def test_an_unspecified_reason_is_left_out_of_the_crl_entry(client, ca, bob, olivia):
    certificate = issue(bob)
    revoke_certificate(certificate=certificate, reason=RevocationReason.UNSPECIFIED, by=olivia)

    assert listed_reason(fetch_crl(client), certificate) is None  # RFC 5280 5.3.1


def test_the_crl_number_increases_with_every_revocation(client, ca, alice, bob, charlie, olivia):
    numbers = [crl_number(fetch_crl(client))]
    for user, reason in ((alice, "affiliation_changed"), (bob, "cessation_of_operation"), (charlie, "superseded")):
        certificate = issue(user)
        revoke_certificate(certificate=certificate, reason=reason, by=olivia)
        crl = fetch_crl(client)
        numbers.append(crl_number(crl))
        assert listed_reason(crl, certificate) == x509.ReasonFlags[reason]

    assert numbers == sorted(set(numbers))
    assert len(fetch_crl(client)) == 3


def test_revoking_a_certificate_twice_is_refused(ca, bob, olivia):
    certificate = issue(bob)
    revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    published = RevocationList.objects.count()

    with translation.override("en"), pytest.raises(RevocationRefused, match=r"already revoked on .* \(Japan time\)"):
        revoke_certificate(certificate=certificate, reason=RevocationReason.UNSPECIFIED, by=olivia)

    certificate.refresh_from_db()
    assert certificate.revocation_reason == RevocationReason.KEY_COMPROMISE
    assert RevocationList.objects.count() == published
    assert AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_REVOKED).count() == 1


def test_an_unknown_reason_is_refused_and_nothing_is_revoked(ca, bob, olivia):
    certificate = issue(bob)

    with pytest.raises(RevocationRefused, match="certificate_hold|Unknown revocation reason"):
        revoke_certificate(certificate=certificate, reason="certificate_hold", by=olivia)

    certificate.refresh_from_db()
    assert certificate.revoked_at is None
    assert not RevocationList.objects.exists()
    assert not AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_REVOKED).exists()


def test_a_revocation_and_its_audit_entry_and_crl_are_one_transaction(ca, bob, olivia):
    certificate = issue(bob)
    with pytest.raises(RuntimeError), transaction.atomic():
        revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
        raise RuntimeError("the caller's transaction fails after revoking")

    certificate.refresh_from_db()
    assert certificate.revoked_at is None
    assert not AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_REVOKED).exists()
    assert not RevocationList.objects.exists()

    revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_REVOKED)
    assert (entry.actor, entry.subject, entry.certificate_serial) == (olivia, bob, certificate.serial_number)
    assert entry.detail["reason"] == "key_compromise"


def test_the_crl_is_re_signed_once_its_next_update_is_within_the_margin_and_not_before(client, ca, settings):
    settings.CRL_VALIDITY_HOURS = 24
    settings.CRL_REFRESH_MARGIN_HOURS = 6
    with time_machine.travel(T0, tick=False):
        first = fetch_crl(client)
    assert first.next_update_utc == T0 + timedelta(hours=24)

    with time_machine.travel(T0 + timedelta(hours=17, minutes=59, seconds=59), tick=False):
        assert crl_number(fetch_crl(client)) == crl_number(first)

    refreshed_at = T0 + timedelta(hours=18)
    with time_machine.travel(refreshed_at, tick=False):
        refreshed = fetch_crl(client)
    assert crl_number(refreshed) == crl_number(first) + 1
    assert refreshed.last_update_utc == refreshed_at
    assert refreshed.next_update_utc == refreshed_at + timedelta(hours=24)
    assert refreshed.is_signature_valid(ca.certificate.public_key())


def test_refresh_crl_command_re_signs_only_when_due(ca, settings):
    from django.core.management import call_command

    settings.CRL_VALIDITY_HOURS = 24
    settings.CRL_REFRESH_MARGIN_HOURS = 6
    with time_machine.travel(T0, tick=False):
        call_command("refresh_crl", stdout=io.StringIO())
        call_command("refresh_crl", stdout=io.StringIO())
    assert RevocationList.objects.count() == 1
    with time_machine.travel(T0 + timedelta(hours=20), tick=False):
        call_command("refresh_crl", stdout=io.StringIO())
    assert RevocationList.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_that_all_find_the_crl_due_sign_one_new_crl_between_them(ca, settings):
    if not uses_postgresql():
        pytest.skip("needs PostgreSQL's row lock between connections: set DATABASE_URL=postgres://... (CI does)")
    settings.CRL_VALIDITY_HOURS = 24
    settings.CRL_REFRESH_MARGIN_HOURS = 6
    first = publish_crl(now=T0)
    due_at = T0 + timedelta(hours=20)
    requests = 10
    start = threading.Barrier(requests)

    def request() -> int:
        """One GET /pki/crl in its own thread with its own database connection, released together."""
        try:
            start.wait(timeout=30)
            return current_crl(now=due_at).number
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=requests) as pool:
        futures = [pool.submit(request) for _ in range(requests)]
    numbers = [future.result() for future in futures]

    assert numbers == [first.number + 1] * requests
    assert list(RevocationList.objects.order_by("number").values_list("number", flat=True)) == [
        first.number, first.number + 1
    ]


def test_a_revoked_certificate_leaves_the_crl_once_it_has_expired(client, ca, bob, olivia):
    with time_machine.travel(T0, tick=False):
        certificate = issue(bob)
        revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
        assert len(fetch_crl(client)) == 1
    with time_machine.travel(certificate.not_after + timedelta(seconds=1), tick=False):
        assert len(fetch_crl(client)) == 0


def test_first_use_of_a_newer_certificate_supersedes_the_older_ones(client, ca, bob):
    with time_machine.travel(T0, tick=False):
        older = issue(bob)
        supersede_older_certificates(newer=older)  # first login with it
    renewed_at = T0 + timedelta(days=340)
    with time_machine.travel(renewed_at, tick=False):
        newer = issue(bob)
    older.refresh_from_db()
    assert older.revoked_at is None  # the renewal alone does not revoke the one in use

    used_at = renewed_at + timedelta(hours=2)
    with time_machine.travel(used_at, tick=False):
        superseded = supersede_older_certificates(newer=newer)
        crl = fetch_crl(client)

    assert superseded == [older]
    older.refresh_from_db()
    newer.refresh_from_db()
    assert newer.first_used_at == used_at
    assert (older.revoked_at, older.superseded_at, older.revocation_reason) == (
        used_at, used_at, RevocationReason.SUPERSEDED
    )
    assert listed_reason(crl, older) == x509.ReasonFlags.superseded
    actions = set(AuditEntry.objects.filter(subject=bob).values_list("action", "certificate_serial"))
    assert (CertificateAction.CERTIFICATE_FIRST_USED, newer.serial_number) in actions
    assert (CertificateAction.CERTIFICATE_SUPERSEDED, older.serial_number) in actions
    assert (CertificateAction.CERTIFICATE_REVOKED, older.serial_number) in actions

    # A second login with it changes nothing more.
    with time_machine.travel(used_at + timedelta(hours=1), tick=False):
        assert supersede_older_certificates(newer=newer) == []
    newer.refresh_from_db()
    assert newer.first_used_at == used_at


def test_pkilint_finds_no_error_in_the_published_crl(client, ca, bob, charlie, olivia, tmp_path):
    lint_crl = Path(sys.executable).parent / "lint_crl"
    if not lint_crl.exists():
        pytest.skip(f"pkilint is not installed at {lint_crl}")
    revoke_certificate(certificate=issue(bob), reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    revoke_certificate(certificate=issue(charlie), reason=RevocationReason.UNSPECIFIED, by=olivia)
    response = client.get("/pki/crl", secure=True)
    (tmp_path / "portal.crl").write_bytes(response.content)

    result = subprocess.run(
        [str(lint_crl), "lint", "-t", "CRL", "-p", "PKIX", "-s", "ALL", "-f", "JSON", str(tmp_path / "portal.crl")],
        capture_output=True, text=True, timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["results"], result.stderr
    errors = [
        finding for entry in report["results"] for finding in entry["finding_descriptions"]
        if finding["severity"] in ("FATAL", "ERROR", "CRITICAL", "WARNING")
    ]
    assert errors == []


@pytest.mark.django_db
def test_the_crl_and_chain_say_the_ca_is_not_set_up_yet_before_init_ca(client):
    for path in ("/pki/crl", "/pki/ca.pem"):
        response = client.get(path)
        assert response.status_code == 503
        assert b"init_ca" in response.content
