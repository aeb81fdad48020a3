"""The Prometheus endpoint: the estate's figures and request latencies, from the internal side only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from accounts.jobs import recording
from certificates.crl import current_crl
from certificates.models import Certificate, RevocationReason
from certificates.services import issue_certificate, revoke_certificate
from notices.models import Reminder
from tests.support.pki import make_csr
from tests.support.servers import Browser, plain_get, start_django

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
TOKEN = "a-bearer-token-for-the-banks-prometheus-0123"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def scrape(client, **headers):
    return client.get("/metrics", **headers)


@pytest.fixture
def estate(ca, alice, bob, charlie, olivia):
    issued = {}
    for user, days_ago in ((alice, 10), (bob, 400), (charlie, 20)):
        issued[user.login_id] = issue_certificate(
            user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR, now=NOW - timedelta(days=days_ago)
        ).certificate
    revoke_certificate(certificate=issued["charlie-admin"], reason=RevocationReason.KEY_COMPROMISE, by=olivia,
                       now=NOW - timedelta(hours=2))  # also signs a CRL at that time
    for state in (Reminder.State.SENT, Reminder.State.SENT, Reminder.State.BOUNCED):
        Reminder.objects.create(kind=Reminder.Kind.DIGEST, recipient=alice, state=state, run=uuid.uuid4(),
                                digest_date=NOW.date() - timedelta(days=Reminder.objects.count()))
    with time_machine.travel(NOW - timedelta(minutes=5), tick=False), recording("certificates.tasks.refresh_crl"):
        current_crl(now=NOW - timedelta(hours=2))
    return issued


def test_the_estate_is_counted_at_scrape_time(estate, client):
    with time_machine.travel(NOW, tick=False):
        response = scrape(client)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())
    assert found[("certportal_certificates", (("state", "valid"),))] == 1  # alice's
    assert found[("certportal_certificates", (("state", "expired"),))] == 1  # bob's, issued 400 days ago
    assert found[("certportal_certificates", (("state", "revoked"),))] == 1  # charlie's
    assert found[("certportal_certificates", (("state", "not_yet_valid"),))] == 0
    assert found[("certportal_certificates_live", ())] == 1
    assert found[("certportal_reminders", (("state", "sent"),))] == 2
    assert found[("certportal_reminders", (("state", "bounced"),))] == 1
    assert found[("certportal_reminders", (("state", "queued"),))] == 0
    assert found[("certportal_job_last_success_timestamp_seconds", (("job", "refresh-crl"),))] \
        == (NOW - timedelta(minutes=5)).timestamp()
    assert ("certportal_job_last_success_timestamp_seconds", (("job", "send-expiry-reminders"),)) not in found
    assert found[("certportal_crl_next_update_timestamp_seconds", ())] == (NOW + timedelta(hours=22)).timestamp()


def test_request_latencies_are_observed_by_url_name(db, client):
    client.get("/")
    client.get("/no-such-page/")

    found = samples(scrape(client).content.decode())

    assert found[("certportal_request_duration_seconds_count",
                  (("method", "GET"), ("status", "200"), ("view", "login")))] >= 1
    assert found[("certportal_request_duration_seconds_count",
                  (("method", "GET"), ("status", "404"), ("view", "<unresolved>")))] >= 1


def test_a_scrape_relayed_by_a_trusted_proxy_needs_the_internal_listeners_mark(db, client, behind_proxy):
    assert scrape(client).status_code == 404
    assert scrape(client, HTTP_X_CERTPORTAL_LISTENER="public").status_code == 404
    assert scrape(client, HTTP_X_CERTPORTAL_LISTENER="internal").status_code == 200


def test_with_a_token_set_a_scrape_must_bear_it(db, client, settings):
    settings.METRICS_TOKEN = TOKEN

    assert scrape(client).status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer not-the-token").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_only_get_is_answered(db, client):
    assert client.post("/metrics").status_code == 405


def test_a_short_token_stops_start_up(tmp_path):
    result = start_django(tmp_path, CERTPORTAL_METRICS_TOKEN="short")

    assert result.returncode != 0
    assert "CERTPORTAL_METRICS_TOKEN" in result.stderr.strip().splitlines()[-1]


# --- through Debian's nginx with deploy/nginx.conf --------------------------------------------------


def test_nginx_keeps_metrics_off_the_public_side_and_serves_them_on_the_internal_listener(nginx_portal, estate):
    browser = Browser(nginx_portal, language="en")
    for path in ("/metrics", "/metrics?format=text", "//metrics", "/%6Detrics"):
        assert browser.get(path, headers={"X-Certportal-Listener": "internal"}).status == 404, path
    assert plain_get("127.0.0.1", nginx_portal.http_port, "/metrics").status in (301, 404)

    internal = plain_get("127.0.0.1", nginx_portal.metrics_port, "/metrics")
    assert internal.status == 200, nginx_portal.logs()
    found = samples(internal.text)
    assert found[("certportal_certificates", (("state", "revoked"),))] == 1
    assert plain_get("127.0.0.1", nginx_portal.metrics_port, "/").status == 404  # nothing else there

    # The request above went through gunicorn in multiprocess mode: its latency is in the next scrape.
    again = samples(plain_get("127.0.0.1", nginx_portal.metrics_port, "/metrics").text)
    assert again[("certportal_request_duration_seconds_count",
                  (("method", "GET"), ("status", "200"), ("view", "metrics")))] >= 1


def test_reminders_failing_for_an_hour_are_a_metric_to_alert_on(db, client, alice, charlie):
    for admin, since in ((alice, NOW - timedelta(minutes=61)), (charlie, NOW - timedelta(minutes=59))):
        Reminder.objects.create(kind=Reminder.Kind.DIGEST, recipient=admin, digest_date=NOW.date(), run=uuid.uuid4(),
                                state=Reminder.State.QUEUED, failing_since=since)
    with time_machine.travel(NOW, tick=False):
        found = samples(scrape(client).content.decode())
    assert found[("certportal_reminders_failing_over_an_hour", ())] == 1  # alice's digest; charlie's not yet
