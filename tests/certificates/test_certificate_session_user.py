"""A certificate-bound page takes its user from the certificate row: one query fewer, same answers."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.support.clients import signed_in

pytestmark = [pytest.mark.usefixtures("ca", "behind_proxy")]



def user_queries(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("important-notices"))
    return response.status_code, sum('FROM "accounts_user"' in q["sql"] for q in queries.captured_queries)


def test_a_bound_page_does_not_read_the_user_a_second_time(bob):
    client = signed_in(bob)
    status, reads = user_queries(client)
    assert status == 200
    assert reads == 0  # the owner came with the certificate (select_related)


def test_a_changed_password_still_ends_the_session(bob):
    client = signed_in(bob)
    bob.set_password("Another-horse-2026")
    bob.save()
    response = client.get(reverse("important-notices"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_suspended_id_is_not_taken_from_the_certificate(bob):
    client = signed_in(bob)
    bob.state = bob.State.SUSPENDED
    bob.save()
    response = client.get(reverse("important-notices"))
    assert response.status_code == 302


def test_the_important_notices_page_reads_the_database_twice(bob, django_assert_num_queries):
    client = signed_in(bob)
    client.get(reverse("important-notices"))  # the session is refreshed once a minute at most
    # The certificate with its owner, the ID's current certificate and the session; the published notices.
    with django_assert_num_queries(2):
        assert client.get(reverse("important-notices")).status_code == 200


def test_a_certificate_revoked_between_two_requests_ends_the_session_at_the_next(bob):
    """Nothing about the certificate is kept between requests: its state is read on each one."""
    from certificates.models import RevocationReason
    from certificates.services import revoke_certificate

    client = signed_in(bob)
    assert client.get(reverse("important-notices")).status_code == 200
    certificate = bob.certificates.get()
    revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=None)
    response = client.get(reverse("important-notices"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_notices_page_shows_a_renewal_issued_after_the_certificate_in_use(bob, csr_factory):
    """The current certificate read with the request's certificate is the newer one, once issued."""
    from certificates.models import Certificate
    from certificates.services import issue_certificate

    client = signed_in(bob, through_the_form=True)
    assert b"newer-certificate" not in client.get(reverse("important-notices")).content
    issue_certificate(user=bob, csr=csr_factory()[0], via=Certificate.Channel.RENEWAL)
    assert b"newer-certificate" in client.get(reverse("important-notices")).content


def session_reads(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("important-notices"))
    return response.status_code, sum(q["sql"].lstrip().startswith("SELECT") and 'FROM "django_session"' in q["sql"]
                                      for q in queries.captured_queries)


def test_the_session_comes_with_the_certificates_statement(bob):
    client = signed_in(bob)
    status, reads = session_reads(client)
    assert status == 200
    assert reads == 0  # no statement of its own: the session was joined to the certificate's


def test_an_expired_session_row_is_not_taken_from_the_statement(bob):
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    client = signed_in(bob)
    Session.objects.filter(pk=client.session.session_key).update(expire_date=timezone.now())
    response = client.get(reverse("important-notices"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_session_ended_elsewhere_is_gone_at_the_next_request(bob):
    """Logged out in another tab (or its row deleted by an operator): the next request is anonymous."""
    from django.contrib.sessions.models import Session

    client = signed_in(bob)
    assert client.get(reverse("important-notices")).status_code == 200
    Session.objects.filter(pk=client.session.session_key).delete()
    assert client.get(reverse("important-notices")).status_code == 302
