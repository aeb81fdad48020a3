"""Races, on PostgreSQL and SQLite (IMMEDIATE transactions): at most one issuance at a time per ID (row
lock), and a one-time code's attempts counted exactly (compare-and-set UPDATE)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import mail
from django.db import connection, connections

from accounts.models import AuditEntry
from certificates import otp
from certificates.csr import CertificateRefused
from certificates.models import Certificate, CertificateAction, OneTimeCode
from certificates.services import issue_certificate
from tests.support.pki import make_csr

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]



REQUESTS = 20


def issue_all_at_once(user, csrs: list[bytes]) -> list[object]:
    """Each request in its own thread with its own database connection, released together."""
    start = threading.Barrier(len(csrs))

    def request(csr: bytes):
        try:
            start.wait(timeout=30)
            return issue_certificate(user=user, csr=csr, via=Certificate.Channel.OBTAIN)
        except CertificateRefused as refusal:
            return refusal
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(csrs)) as pool:
        return list(pool.map(request, csrs))


def test_twenty_concurrent_requests_with_different_csrs_produce_one_certificate_and_nineteen_refusals(
    transactional_db, ca, bob
):
    outcomes = issue_all_at_once(bob, [make_csr()[0] for _ in range(REQUESTS)])

    issued = [outcome for outcome in outcomes if not isinstance(outcome, CertificateRefused)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, CertificateRefused)]
    assert len(issued) == 1, f"{connection.vendor}: {len(issued)} certificates issued"
    assert issued[0].created
    assert [refusal.code for refusal in refused] == ["issuance_in_progress"] * (REQUESTS - 1)
    assert Certificate.objects.filter(owner=bob).count() == 1
    assert AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_ISSUED, subject=bob).count() == 1
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=bob, detail__reason="issuance_in_progress"
    ).count() == REQUESTS - 1


def test_the_same_csr_sent_twenty_times_at_once_produces_one_certificate(transactional_db, ca, bob):
    csr, _key = make_csr()
    outcomes = issue_all_at_once(bob, [csr] * REQUESTS)

    assert not [outcome for outcome in outcomes if isinstance(outcome, CertificateRefused)]
    assert sum(outcome.created for outcome in outcomes) == 1
    assert {outcome.certificate.pk for outcome in outcomes} == {Certificate.objects.get(owner=bob).pk}
    assert AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_ISSUED, subject=bob).count() == 1


def enter_all_at_once(code_id: int, user, entries: list[str]) -> list[object]:
    """Each entry of the e-mailed code in its own thread and database connection, released together."""
    start = threading.Barrier(len(entries))

    def enter(entered: str):
        try:
            start.wait(timeout=30)
            return otp.verify_one_time_code(code_id=code_id, user=user, entered=entered)
        except otp.CodeRefused as refusal:
            return refusal
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(entries)) as pool:
        return list(pool.map(enter, entries))


def sent_code(user) -> tuple[OneTimeCode, str]:
    record = otp.send_one_time_code(user=user, purpose=OneTimeCode.Purpose.OBTAIN)
    return record, re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)


def test_twenty_concurrent_wrong_codes_use_exactly_the_codes_five_attempts(transactional_db, bob):
    record, right = sent_code(bob)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    outcomes = enter_all_at_once(record.pk, bob, [wrong] * REQUESTS)

    codes = sorted(outcome.code for outcome in outcomes)
    assert codes == sorted(["wrong_code"] * otp.MAX_ATTEMPTS + ["too_many_attempts"] * (REQUESTS - otp.MAX_ATTEMPTS)), (
        connection.vendor
    )
    record.refresh_from_db()
    assert record.attempts == otp.MAX_ATTEMPTS
    # The right code after them, from any session, is refused: the count is the code's, not a browser's.
    with pytest.raises(otp.CodeRefused) as refused:
        otp.verify_one_time_code(code_id=record.pk, user=bob, entered=right)
    assert refused.value.code == "too_many_attempts"


def test_the_right_code_sent_twenty_times_at_once_is_accepted_once(transactional_db, bob):
    record, right = sent_code(bob)

    outcomes = enter_all_at_once(record.pk, bob, [right] * REQUESTS)

    accepted = [outcome for outcome in outcomes if isinstance(outcome, OneTimeCode)]
    assert len(accepted) == 1, f"{connection.vendor}: accepted {len(accepted)} times"
    assert AuditEntry.objects.filter(action=CertificateAction.ONE_TIME_CODE_ACCEPTED, subject=bob).count() == 1
