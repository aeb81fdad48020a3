"""The customer's whole journey in Chromium on two nodes, each step landing on another node than the last.

deploy/README.md's "Several nodes": one Debian nginx (deploy/nginx.conf) in front of two
gunicorn nodes, two Celery workers each with its own beat, one Redis and one PostgreSQL
(tests/stack.py, `production_stack(nodes=2)`). The journey is tests/test_e2e_journey.py's:
obtain a certificate with the e-mailed code, log in with it and the password, 重要なお知らせ,
the 30-day reminder at 09:00, the renewal screen by screen, the old certificate refused.

The test's nginx sends each page to the first node and each form to the second, and the
one-time code's check back to the first (`route_across_nodes`): every CSRF token, the session
and the one-time code are made on one node and honoured on the other, which only a state shared
through the database allows. nginx's log of which node served each request is checked, and
both beats run the reminder job while each e-mail goes out once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accounts.models import JobRun
from notices.models import Reminder
from tests.support.browser import needs_chromium
from tests.support.esp_standin import PostmarkStandIn
from tests.support.journey import journey_user, the_journey
from tests.support.net import uses_postgresql
from tests.support.servers import NGINX
from tests.support.stack import Served, production_stack, require_faketime

pytestmark = [pytest.mark.xdist_group("e2e"), needs_chromium]
NODES = 2
REMINDER_JOB = "notices.tasks.send_expiry_reminders"


@pytest.fixture
def two_nodes(transactional_db, ca, tmp_path, redis_url):
    if not uses_postgresql():
        pytest.skip("several nodes share PostgreSQL: set DATABASE_URL=postgres://... (CI does, see .ci/run)")
    if not Path(NGINX).exists():
        pytest.skip(f"the production stack needs nginx at {NGINX} (CI installs Debian's nginx)")
    require_faketime()
    postmark = PostmarkStandIn().start()
    stack = production_stack(tmp_path, redis_url=redis_url, postmark=postmark, nodes=NODES)
    yield stack
    stack.stop()
    postmark.stop()


def pages(served: list[Served]) -> list[Served]:
    """The customer's requests: no static files, nor nginx's own OCSP requests at each handshake."""
    return [each for each in served if not each.path.startswith(("/static/", "/pki/"))]


def the_form_of(post: Served, served: list[Served]) -> Served:
    """The page whose form (and CSRF token) a POST sent: the last page shown before it."""
    return [each for each in pages(served[:served.index(post)]) if each.method == "GET"][-1]


def test_the_guide_end_to_end_in_chromium_on_two_nodes(chromium, two_nodes, alice, contract_a, tmp_path):
    user = journey_user(contract_a, "ja")
    the_journey(chromium, two_nodes, user, alice, "ja", tmp_path)

    served = two_nodes.served()
    answered = [each for each in served if each.node is not None and each.status < 400]
    assert {each.node for each in answered} == set(range(NODES)), served
    steps = pages(served)
    posts = [each for each in steps if each.method == "POST"]
    assert {post.path for post in posts} >= {
        "/", "/certificate/obtain/", "/certificate/obtain/code/", "/certificate/obtain/issue/",
        "/certificate/renew/issue/",
    }, steps
    # No form was refused (403: CSRF), and each but the code's was posted to another node than showed it.
    assert all(post.status < 400 for post in posts), posts
    crossed = [post for post in posts if post.node != the_form_of(post, served).node]
    assert {post.path for post in crossed} >= {
        "/", "/certificate/obtain/", "/certificate/obtain/issue/", "/certificate/renew/issue/",
    }, steps
    # The one-time code: e-mailed by one node, accepted (302 to the enrollment page) by the other.
    sent = next(post for post in posts if post.path == "/certificate/obtain/")
    checked = next(post for post in posts if post.path == "/certificate/obtain/code/")
    assert checked.status == 302 and checked.node != sent.node, (sent, checked)
    # The session: each login is answered by one node and 重要なお知らせ shown by the other.
    logins = [post for post in posts if post.path == "/" and post.status == 302]  # the old certificate's: 200
    assert len(logins) == 3, steps  # the first certificate's twice, the renewed one's once
    for login in logins:
        after = next(each for each in steps[steps.index(login) + 1:] if each.method == "GET")
        assert (after.path, after.status) == ("/notices/", 200) and after.node != login.node, (login, after)

    # Reminder day: both beats ran the 09:00 job, and each e-mail went out once.
    deadline = time.monotonic() + 30
    while JobRun.objects.filter(name=REMINDER_JOB).count() < NODES:
        assert time.monotonic() < deadline, two_nodes.logs()
        time.sleep(0.2)
    mails = sorted((mail.to, mail.subject) for mail in two_nodes.mails())
    assert len(mails) == len(set(mails)), mails
    # The user's 30-day reminder and alice's digest, each recorded once and sent.
    states = list(Reminder.objects.values_list("state", flat=True))
    assert states == [Reminder.State.SENT] * 2, states
