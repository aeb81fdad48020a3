"""Reminders through a real Celery worker process, a real broker and the job's command twin.

The worker and the job run as subprocesses on this test's database (transactional_db, so
they see the committed rows); e-mail goes through anymail's real Postmark backend to the
local stand-in (tests/support/esp_standin.py). Faults: the job started twice at the same time, the
worker's process killed while sending, the provider failing then back. The fault tests need
Redis and PostgreSQL and skip without them; the embedded test runs on SQLite and the
filesystem broker, as `make run` does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings as django_settings
from django.db import connection

from accounts.models import User
from notices.models import Reminder, ReminderAttempt
from tests.support.clients import issue_for
from tests.support.esp_standin import PostmarkStandIn
from tests.support.net import uses_postgresql

JST = ZoneInfo("Asia/Tokyo")
BASE_DIR = Path(django_settings.BASE_DIR)
# The job in its own process runs on the real clock, and refuses a day after today: it runs today.
RUN_DATE = datetime.now(JST).date()



def database_url() -> str:
    """This test's database (the one pytest-django created), for the subprocesses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Stack:
    """Environment shared by the worker and the job: database, broker, queue, provider, short timings."""

    def __init__(self, tmp_path: Path, broker_url: str, postmark: PostmarkStandIn | None) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "certportal.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": f"reminders-test-{uuid.uuid4().hex[:12]}",  # parallel runs share Redis
            "CERTPORTAL_VAR_DIR": str(tmp_path / "var"),  # the file broker's folders, the mail folder
            "CERTPORTAL_REMINDER_RETRY_BASE_SECONDS": "1",
            "CERTPORTAL_REMINDER_RETRY_MAX_SECONDS": "2",
            # Well above the provider timeout below, or a loaded machine's slow try is taken over.
            "CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS": "5",
            "CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS": "4",
            "CERTPORTAL_REMINDER_REQUEUE_AFTER_SECONDS": "2",
            "ANYMAIL_REQUESTS_TIMEOUT": "1",  # a provider slower than this leaves the outcome unknown
            **(postmark.anymail_env() if postmark else {}),
        }
        self.workers: list[subprocess.Popen] = []

    def start_worker(self, *, concurrency: int = 2) -> subprocess.Popen:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "certportal", "worker", "--loglevel", "INFO",
             "--pool", "prefork", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=BASE_DIR, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        deadline = time.monotonic() + 30
        while " ready." not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        worker.log = log
        return worker

    def start_job(self, day: date = RUN_DATE) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", "send_expiry_reminders", "--date", day.isoformat()],
            cwd=BASE_DIR, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def run_job(self, day: date = RUN_DATE) -> str:
        job = self.start_job(day)
        out, err = job.communicate(timeout=60)
        assert job.returncode == 0, err
        return out

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGQUIT)  # cold shutdown: every e-mail of the test is sent already
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def pool_children(worker: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.2)


def all_sent() -> bool:
    states = set(Reminder.objects.exclude(state=Reminder.State.SKIPPED).values_list("state", flat=True))
    return states == {Reminder.State.SENT}


def due_certificates(contract, count: int) -> list:
    """`count` user IDs of `contract`, each with a certificate 20 days from expiry on RUN_DATE."""
    users = User.objects.bulk_create(
        User(login_id=f"due-{contract.number}-{n:03}", email=f"due{n}@example.com", password="!",
             contract=contract, role=User.Role.USER)
        for n in range(count)
    )
    expires = datetime.combine(RUN_DATE + timedelta(days=20), clock_time(9, 0), tzinfo=JST)
    return [issue_for(user, now=expires + timedelta(seconds=1) - relativedelta(months=12))[0] for user in users]


@pytest.fixture
def postmark():
    standin = PostmarkStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def redis_and_postgresql(redis_url):
    if not uses_postgresql():
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... (CI does, see .ci/run)")
    return redis_url


@pytest.fixture
def stack(tmp_path, transactional_db, postmark, redis_and_postgresql):
    stack = Stack(tmp_path, redis_and_postgresql, postmark)
    yield stack
    stack.stop()


# --- embedded: SQLite, the filesystem broker, e-mail written to files ----------------------


@pytest.mark.embedded
def test_a_worker_on_the_filesystem_broker_sends_the_reminder_to_a_file(tmp_path, transactional_db, ca, contract_a):
    if uses_postgresql():
        pytest.skip("the embedded defaults are SQLite and the filesystem broker (make test runs this again on them)")
    due_certificates(contract_a, 1)
    stack = Stack(tmp_path, "filesystem://", None)
    stack.env.pop("CERTPORTAL_EMAIL_BACKEND", None)  # the default: e-mail written to files
    try:
        stack.start_worker(concurrency=1)
        out = stack.run_job()
        assert "1 e-mail(s) queued" in out
        wait_until(all_sent, 30, "the worker did not send the reminder")
    finally:
        stack.stop()
    written = "".join(path.read_text() for path in (tmp_path / "var" / "mail").iterdir())
    assert "To: due0@example.com" in written


# --- faults, over Redis and PostgreSQL -----------------------------------------------------


def test_the_job_started_twice_at_the_same_time_sends_nothing_twice(stack, postmark, ca, alice, contract_a,
                                                                    contract_b):
    due_certificates(contract_a, 12)
    due_certificates(contract_b, 12)
    stack.start_worker(concurrency=4)
    jobs = [stack.start_job(), stack.start_job()]
    outputs = [job.communicate(timeout=60)[0] for job in jobs]
    assert all(job.returncode == 0 for job in jobs)
    wait_until(all_sent, 40, "not every reminder was sent")
    reminders = list(Reminder.objects.values_list("pk", flat=True))
    assert len(reminders) == 24 + 1  # 24 expiry reminders and alice's digest (contract B has no administrator)
    queued = sum(int(re.search(r"(\d+) e-mail\(s\) queued", out).group(1)) for out in outputs)
    assert queued == 25  # the two runs split the work; neither queued what the other recorded
    sent = Counter(message.metadata["reminder_id"] for message in postmark.accepted)
    assert sent == Counter({str(pk): 1 for pk in reminders})


def test_a_worker_killed_while_sending_loses_nothing(stack, postmark, ca, contract_a):
    certificates = due_certificates(contract_a, 4)
    # The held request outlives no timeout: only the e-mail in flight when the worker dies is in doubt.
    stack.env["ANYMAIL_REQUESTS_TIMEOUT"] = "3"
    worker = stack.start_worker(concurrency=1)
    postmark.hang()  # the first e-mail's request is held: the worker is in the middle of sending it
    stack.run_job()
    assert postmark.wait_for_requests(1), "the worker never called the provider"
    [child] = pool_children(worker)
    os.kill(child, signal.SIGKILL)
    time.sleep(0.5)
    postmark.release()
    wait_until(all_sent, 40, "a reminder was lost when the worker was killed:\n" + worker.log.read_text())
    sent = Counter(message.metadata["reminder_id"] for message in postmark.accepted)
    assert set(sent) == {str(pk) for pk in Reminder.objects.values_list("pk", flat=True)}
    assert len(sent) == len(certificates)
    twice = [pk for pk, count in sent.items() if count > 1]
    assert len(twice) <= 1 and max(sent.values()) <= 2  # at most the one in flight went out twice
    print("worker killed while sending:", tally(postmark, owed_reminders()))


def test_a_reminder_goes_out_once_when_the_provider_is_back(stack, postmark, ca, contract_a):
    due_certificates(contract_a, 3)
    postmark.outage_status = 503
    stack.start_worker(concurrency=2)
    stack.run_job()
    # Every reminder fails, and is tried again after a backoff (1 s, then 2 s: short timings for the test).
    def each_failed_and_retried() -> bool:
        rows = list(Reminder.objects.values_list("attempts", "last_error"))
        # (an attempt is counted when claimed, a moment before its request reaches the provider)
        return all(attempts >= 2 and error for attempts, error in rows) and postmark.refused >= 6

    wait_until(each_failed_and_retried, 30, "the worker did not retry every reminder")
    assert not postmark.accepted
    assert set(Reminder.objects.values_list("state", flat=True)) <= {Reminder.State.QUEUED, Reminder.State.SENDING}
    postmark.outage_status = None
    wait_until(all_sent, 30, "the reminders were not sent once the provider was back")
    time.sleep(2.5)  # any duplicate retry would have run by now
    sent = Counter(message.metadata["reminder_id"] for message in postmark.accepted)
    assert sorted(sent.values()) == [1, 1, 1]
    print("provider down, then back:", tally(postmark, owed_reminders()))
    assert min(Reminder.objects.values_list("attempts", flat=True)) >= 2


# --- faults of issue 14: owed / received / duplicates / lost, counted per scenario ------------


def tally(postmark: PostmarkStandIn, owed: list[int]) -> dict[str, int]:
    """E-mails received against reminders owed: a duplicate is a copy beyond the first, lost is owed
    and never received."""
    received = Counter(message.metadata["reminder_id"] for message in postmark.accepted)
    return {
        "owed": len(owed),
        "received": sum(received.values()),
        "duplicates": sum(count - 1 for count in received.values() if count > 1),
        "lost": sum(1 for pk in owed if received[str(pk)] == 0),
        "most copies": max(received.values(), default=0),
    }


def owed_reminders() -> list[int]:
    return list(Reminder.objects.exclude(state=Reminder.State.SKIPPED).values_list("pk", flat=True))


def settled(*states: str):
    return lambda: set(Reminder.objects.values_list("state", flat=True)) <= set(states)


SCENARIO_SIZE = 20


def test_a_provider_that_answers_after_the_timeout_gets_at_most_one_more_copy_after_the_hold(
    stack, postmark, ca, contract_b
):
    due_certificates(contract_b, SCENARIO_SIZE)  # no administrator: reminders only
    postmark.answer_delay = 1.5  # accepts each e-mail, answers after anymail's 1-second timeout
    stack.start_worker(concurrency=4)
    stack.run_job()
    wait_until(settled(Reminder.State.UNCERTAIN), 60, "not every reminder settled as uncertain")
    time.sleep(2)  # any further retry would have run by now
    counts = tally(postmark, owed_reminders())
    print("slow provider:", counts)
    assert counts["lost"] == 0 and counts["most copies"] <= 2  # one more copy at most, never one per retry
    hold = float(stack.env["CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS"])
    for pk in owed_reminders():
        copies = [message.at for message in postmark.accepted_for(pk)]
        assert len(copies) < 2 or copies[1] - copies[0] >= hold - 0.5  # only after the hold
        outcomes = list(ReminderAttempt.objects.filter(reminder_id=pk).values_list("outcome", flat=True))
        assert outcomes == [ReminderAttempt.Outcome.UNCERTAIN] * 2


def test_a_late_answer_settled_by_a_tracking_event_during_the_hold_sends_no_second_copy(
    stack, postmark, ca, contract_b, settings
):
    from django.test import Client

    from tests.support.esp_standin import WEBHOOK_SECRET, delivery, post_event

    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    due_certificates(contract_b, SCENARIO_SIZE)
    postmark.answer_delay = 1.5
    stack.start_worker(concurrency=4)
    stack.run_job()
    client, reported = Client(), set()

    def provider_reports_deliveries() -> bool:
        # The provider's webhook, as it arrives: before the send's answer (it never comes in time).
        for message in list(postmark.accepted):
            if message.message_id not in reported:
                event = {**delivery(message.message_id), "Metadata": message.metadata}
                assert post_event(client, event).status_code == 200
                reported.add(message.message_id)
        return settled(Reminder.State.DELIVERED)()

    wait_until(provider_reports_deliveries, 60, "the deliveries did not settle every reminder")
    time.sleep(float(stack.env["CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS"]) + 1)  # past the hold
    counts = tally(postmark, owed_reminders())
    print("slow provider, webhooks in time:", counts)
    assert counts == {"owed": SCENARIO_SIZE, "received": SCENARIO_SIZE, "duplicates": 0, "lost": 0,
                      "most copies": 1}
    assert set(ReminderAttempt.objects.values_list("message_id", flat=True)) == reported


def test_tasks_lost_with_the_broker_are_sent_by_the_sweep_within_minutes(stack, postmark, ca, contract_b):
    import redis

    due_certificates(contract_b, SCENARIO_SIZE)
    stack.run_job()  # no worker yet: the tasks wait in Redis
    # Redis restarted without persistence: the queue is gone.
    redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).delete(stack.env["CELERY_TASK_DEFAULT_QUEUE"])
    stack.start_worker(concurrency=4)
    time.sleep(float(stack.env["CERTPORTAL_REMINDER_REQUEUE_AFTER_SECONDS"]) + 0.5)
    assert not postmark.accepted  # lost indeed
    sweep = subprocess.run([sys.executable, "manage.py", "sweep_reminders"], cwd=BASE_DIR, env=stack.env,
                           capture_output=True, text=True, timeout=60)  # what beat runs every few minutes
    assert sweep.returncode == 0, sweep.stderr
    assert f"{SCENARIO_SIZE} reminder(s) re-queued" in sweep.stdout
    wait_until(all_sent, 40, "the sweep did not re-queue every lost reminder")
    counts = tally(postmark, owed_reminders())
    print("tasks lost with the broker:", counts)
    assert counts == {"owed": SCENARIO_SIZE, "received": SCENARIO_SIZE, "duplicates": 0, "lost": 0,
                      "most copies": 1}


def test_the_job_with_the_broker_down_says_what_it_recorded_in_one_line_and_the_sweep_sends_it(
    stack, postmark, ca, contract_b
):
    due_certificates(contract_b, SCENARIO_SIZE)
    down = {**stack.env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    job = subprocess.run([sys.executable, "manage.py", "send_expiry_reminders"], cwd=BASE_DIR, env=down,
                         capture_output=True, text=True, timeout=120)
    assert job.returncode != 0
    assert f"{SCENARIO_SIZE} e-mail(s) recorded, not queued" in job.stdout
    [error] = job.stderr.strip().splitlines()  # one line, no traceback
    assert "broker is unreachable" in error and f"the {SCENARIO_SIZE} reminder(s) recorded" in error
    assert Reminder.objects.count() == SCENARIO_SIZE
    # The broker is back: the next sweep queues them.
    stack.start_worker(concurrency=4)
    time.sleep(float(stack.env["CERTPORTAL_REMINDER_REQUEUE_AFTER_SECONDS"]) + 0.5)
    subprocess.run([sys.executable, "manage.py", "sweep_reminders"], cwd=BASE_DIR, env=stack.env, check=True,
                   capture_output=True, timeout=60)
    wait_until(all_sent, 40, "the reminders recorded while the broker was down were not sent")
    counts = tally(postmark, owed_reminders())
    print("broker down during the job:", counts)
    assert counts == {"owed": SCENARIO_SIZE, "received": SCENARIO_SIZE, "duplicates": 0, "lost": 0,
                      "most copies": 1}
