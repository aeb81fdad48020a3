"""More than one node, as a bank runs the portal (deploy/README.md, "Several nodes").

Two gunicorn nodes behind one Debian nginx (deploy/nginx.conf, its upstream given both), two
Celery workers each with its own beat, one Redis and one PostgreSQL: tests/support/stack.py's
`production_stack(nodes=2)`, whose every process runs under libfaketime from 08:59:30 in Japan,
so that both beats fire the 09:00 reminder job for real. One test walks all of it, to start the
cluster once; tests/e2e/test_multi_node_journey.py walks the customer's journey in Chromium on it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.japan_time import JAPAN
from accounts.models import JobRun
from certificates.models import Certificate
from notices.models import Reminder
from tests.support.clients import issue_for
from tests.support.esp_standin import PostmarkStandIn
from tests.support.net import uses_postgresql
from tests.support.personas import PASSWORD
from tests.support.servers import NGINX, Browser, write_client_files
from tests.support.stack import production_stack, require_faketime

pytestmark = pytest.mark.xdist_group("e2e")
NODES = 2


@pytest.fixture
def cluster(transactional_db, ca, redis_url, tmp_path):
    if not uses_postgresql():
        pytest.skip("several nodes share PostgreSQL (DATABASE_URL=postgres://...; CI sets it)")
    if not Path(NGINX).exists():
        pytest.skip(f"nginx is not installed at {NGINX}")
    require_faketime()
    postmark = PostmarkStandIn().start()
    stack = production_stack(tmp_path, redis_url=redis_url, postmark=postmark, nodes=NODES)
    try:
        # Every node's clock at 08:59:30 in Japan: both beats fire the daily reminder job at 09:00,
        # as on every day of a bank with two nodes.
        stack.start(at=next_japan_time(clock_time(8, 59, 30)))
        yield stack
    finally:
        stack.stop()
        postmark.stop()


def next_japan_time(moment: clock_time) -> datetime:
    """The next `moment` (Japan time) from now."""
    now = datetime.now(JAPAN)
    target = datetime.combine(now.date(), moment, tzinfo=JAPAN)
    return target if target > now else target + timedelta(days=1)


def through_nginx(cluster) -> list[tuple[str, str, int, int | None]]:
    """What nginx relayed so far, and to which node, without the static files and certificates' OCSP."""
    return [(each.method, each.path, each.status, each.node) for each in cluster.served()
            if not each.path.startswith(("/pki/", "/static/"))]


def relayed(cluster, count: int) -> list[tuple[str, str, int, int | None]]:
    """through_nginx once it holds `count` requests: nginx logs each just after answering it."""
    deadline = time.monotonic() + 5
    while len(found := through_nginx(cluster)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_two_nodes_share_sessions_reminders_and_revocations(cluster, alice, bob, tmp_path):
    # Before the beats' 09:00: alice's and bob's certificates expire in 20 days.
    alices, alices_key = issue_for(alice)
    bobs, bobs_key = issue_for(bob)
    Certificate.objects.update(not_after=timezone.now() + timedelta(days=20))
    administrator = Browser(cluster.portal, write_client_files(tmp_path / "alice", alices, alices_key))
    user = Browser(cluster.portal, write_client_files(tmp_path / "bob", bobs, bobs_key))

    # Sessions: each login, posted to node 1, is honoured by node 0, which shows every page.
    assert user.log_in(bob.login_id, PASSWORD).status == 302
    assert administrator.log_in(alice.login_id, PASSWORD).status == 302
    for browser in (user, administrator):
        page = browser.get("/notices/")
        assert page.status == 200 and "重要なお知らせ" in page.text
    assert relayed(cluster, 6) == [
        ("GET", "/", 200, 0), ("POST", "/", 302, 1), ("GET", "/", 200, 0), ("POST", "/", 302, 1),
        ("GET", "/notices/", 200, 0), ("GET", "/notices/", 200, 0),
    ]

    # Reminder day: both beats fire the daily job at 09:00 on their clocks; each e-mail goes out once.
    deadline = time.monotonic() + 90
    while JobRun.objects.filter(name="notices.tasks.send_expiry_reminders").count() < NODES or \
            Reminder.objects.exclude(state=Reminder.State.SENT).exists() or not Reminder.objects.exists():
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.3)
    time.sleep(2)  # a second e-mail, were there one, would arrive now
    sent = sorted((mail.to, mail.subject) for mail in cluster.postmark.accepted)
    assert len(sent) == len(set(sent)) == Reminder.objects.count() == 3, sent  # alice's, bob's, alice's digest

    # A revocation on one node is refused on the other at once: alice revokes bob's certificate in
    # /manage/ (posted to node 1); bob's next page, on node 0, sends him back to the login screen
    # with no CRL exported nor nginx reloaded (nginx's OCSP cache still has bob's "good" answer).
    revoke = f"/manage/certificates/certificate/{bobs.pk}/revoke/"
    assert administrator.post_form(revoke, {"reason": "affiliation_changed"}).status == 302
    bobs.refresh_from_db()
    assert bobs.revoked_at is not None
    answer = user.get("/notices/")
    assert answer.status == 302 and "/notices/" not in answer.location.split("?")[0], (answer.status, answer.location)
    assert relayed(cluster, 9)[6:] == [("GET", revoke, 200, 0), ("POST", revoke, 302, 1),
                                       ("GET", "/notices/", 302, 0)]
