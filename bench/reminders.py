"""Reminder figures of `make bench`: 1,000,000 certificates in PostgreSQL, 20,000 of them due.

A fresh database of this run's own (bench/databases.py; on the server of BENCH_DATABASE_URL or DATABASE_URL,
else postgres://postgres@127.0.0.1:5432/postgres) is filled with generate_series INSERTs:
600,000 IDs of 50,000 contracts, each with its current certificate; 390,000 older
certificates superseded inside the 30-day window; 10,000 IDs renewed but not yet using
their new certificate (the old one is live, inside the window, and still the one relied on).
30,000 certificates are due (1 to 30 days left): 20,000 current ones, used to log in, and the
renewed IDs' old ones (a renewal never used leaves its reminders coming). Measured in the same run:

- selecting and recording the due reminders (the daily job, digests off) against a raw
  indexed SELECT of the same 20,000 rows, and the job's query count;
- the administrators' digests on top (on by default);
- enqueueing the 20,000 tasks: to Redis when it answers on 127.0.0.1:6379, else the
  filesystem broker (in a temporary folder, never the portal's own queue).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid

from tests.support.net import reachable

from .databases import create_database, drop_database, postgres_server_url

DUE_CURRENT = 20_000  # current certificates inside the window
IDS = 600_000
CONTRACTS = 50_000
SUPERSEDED = 390_000
RENEWED = 10_000  # their old certificate inside the window, the renewal never used
DUE = DUE_CURRENT + RENEWED  # what certificates.querysets.relied_on() leaves due
REDIS = ("127.0.0.1", 6379)


def queue_nothing(ids) -> None:
    """The job's way of queueing for the runs whose tasks are not measured (they would only fill the broker)."""


def _step(message: str) -> float:
    print(message, flush=True)
    return time.perf_counter()


def _columns_sql(model, given: dict[str, str], params: list) -> tuple[str, str]:
    """Column list and SELECT expressions for every concrete column of `model`: the given SQL
    expressions, else NULL for nullable columns, else the field's default as a parameter (so
    that columns other engineers add to the model do not break the load)."""
    from django.db import connection

    names, expressions = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        names.append(connection.ops.quote_name(field.column))
        if field.column in given:
            expressions.append(given[field.column].replace("%", "%%"))  # SQL's modulo, not a placeholder
        elif field.null:
            expressions.append("NULL")
        else:
            expressions.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    return ", ".join(names), ", ".join(expressions)


def _insert(cursor, model, given: dict[str, str], from_sql: str, params: list | None = None) -> None:
    params = list(params or [])
    extra: list = []
    columns, expressions = _columns_sql(model, given, extra)
    table = model._meta.db_table
    # The generated statement only interpolates the model's column names and this file's SQL.
    cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {expressions} {from_sql}", extra + params)  # noqa: S608


def load(today, now) -> None:
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from accounts.models import Contract, User
    from certificates.ca import create_ca
    from certificates.models import Certificate

    with override_settings(ROOT_CA_PASSPHRASE="bench-root-passphrase-offline"):  # the key ceremony
        issuer, _created = create_ca()
    day0 = f"'{today.isoformat()} 00:00:00+09'::timestamptz"
    with transaction.atomic(), connection.cursor() as cursor:
        _insert(cursor, Contract, {"number": "lpad(g::text, 8, '0')", "name": "'Bench contract ' || g"},
                f"FROM generate_series(1, {CONTRACTS}) g")
        cursor.execute("SELECT min(id) FROM accounts_contract")
        first_contract = cursor.fetchone()[0]
        _insert(cursor, User, {
            "login_id": "'bench-' || lpad(g::text, 7, '0')",
            "email": "'id' || g || '@bench.example'",
            "password": "'!'",
            "contract_id": f"{first_contract} + (g - 1) % {CONTRACTS}",
            "role": f"CASE WHEN g <= {CONTRACTS} THEN 'administrator' ELSE 'user' END",
            "language": "CASE WHEN g % 5 = 0 THEN 'en' ELSE 'ja' END",
        }, f"FROM generate_series(1, {IDS}) g")
        cursor.execute("SELECT min(id) FROM accounts_user")
        first_user = cursor.fetchone()[0]
        common = {
            "issuer_id": str(issuer.pk), "subject": "'CN=bench'", "der": "'\\x00'::bytea",
            "issued_via": "'renewal'", "revocation_reason": "''",
        }

        def unique(prefix: str) -> dict[str, str]:
            # Ascending keys: the unique indexes grow at their right edge, as fast as a load gets.
            return {
                "serial_number": f"'{prefix}' || lpad(to_hex(g), 16, '0')",
                "public_key_sha256": f"'{prefix}' || lpad(to_hex(g), 63, '0')",
                "fingerprint_sha256": f"'{prefix}' || lpad(to_hex(g), 63, '0')",
            }

        # Each ID's current certificate, used to log in. IDs 1..DUE_CURRENT (spread over the contracts)
        # are due: 1..30 days left; the renewed IDs' new certificates (never used) and everyone else's
        # expire 31..364 days out.
        _insert(cursor, Certificate, {
            **common, **unique("C"),
            "owner_id": f"{first_user} + g - 1",
            "not_after": f"{day0} + (CASE WHEN g <= {DUE_CURRENT} THEN 1 + g % 30 ELSE 31 + g % 334 END)"
                         " * interval '1 day' + interval '23 hours 59 minutes'",
            "not_before": f"{day0} - interval '300 days' + (g % 1000) * interval '1 second'",
            "first_used_at": f"CASE WHEN g > {DUE_CURRENT} AND g <= {DUE} THEN NULL "
                             f"ELSE {day0} - interval '299 days' END",
        }, f"FROM generate_series(1, {IDS}) g")
        # Older certificates superseded by the current ones, expiring inside the window.
        _insert(cursor, Certificate, {
            **common, **unique("S"),
            "owner_id": f"{first_user} + {DUE} + (g - 1) % {IDS - DUE}",
            "not_after": f"{day0} + (1 + g % 30) * interval '1 day' + interval '12 hours'",
            "not_before": f"{day0} - interval '340 days'",
            "superseded_at": f"{day0} - interval '20 days'", "revoked_at": f"{day0} - interval '20 days'",
            "revocation_reason": "'superseded'",
        }, f"FROM generate_series(1, {SUPERSEDED}) g")
        # Renewed IDs: the old certificate is live and inside the window, the new one not yet used.
        _insert(cursor, Certificate, {
            **common, **unique("R"),
            "owner_id": f"{first_user} + {DUE_CURRENT} + g - 1",
            "not_after": f"{day0} + (1 + g % 30) * interval '1 day' + interval '6 hours'",
            "not_before": f"{day0} - interval '350 days'",
        }, f"FROM generate_series(1, {RENEWED}) g")
        cursor.execute("ANALYZE")
    assert Certificate.objects.count() == IDS + SUPERSEDED + RENEWED == 1_000_000


RAW_SELECT = """
SELECT c.id, c.owner_id, u.email, u.language, c.not_after
FROM certificates_certificate c JOIN accounts_user u ON u.id = c.owner_id
WHERE c.revoked_at IS NULL AND c.superseded_at IS NULL AND c.not_after > %s AND c.not_after < %s
  AND u.state <> 'suspended'
  AND NOT EXISTS (SELECT 1 FROM certificates_certificate n
                  WHERE n.owner_id = c.owner_id AND n.not_before > c.not_before AND n.revoked_at IS NULL
                    AND n.first_used_at IS NOT NULL)
"""


def measure(today, now) -> list[dict]:
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from notices import reminders
    from notices.models import Reminder
    from notices.tasks import enqueue as queue_to_broker

    window_end = reminders.japan_day_start(today + __import__("datetime").timedelta(days=31))

    def raw_select() -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(RAW_SELECT, [now, window_end])
            raw_rows = cursor.fetchall()
        assert len(raw_rows) == DUE, len(raw_rows)
        return time.perf_counter() - started

    # Warmed up, then timed again right before each run of the job (below), so that each ratio compares
    # the two under the same load of this shared machine.
    raw_times = [raw_select() for _ in range(4)][1:]

    # The job's own work; its enqueueing (on commit) is timed apart: the first commit hook marks the commit.
    settings.ADMIN_DIGEST_ENABLED = False
    marks: dict[str, float] = {}
    enqueued: list[int] = []

    def timed_enqueue(ids) -> None:
        marks["enqueue_start"] = time.perf_counter()
        queue_to_broker(ids)
        enqueued.extend(ids)
        marks["enqueue_end"] = time.perf_counter()

    # Warmed up as the raw SELECT was: one run rolled back (nothing recorded, nothing queued).
    with transaction.atomic():
        reminders.run_reminder_job(enqueue=queue_nothing, today=today, now=now)
        transaction.set_rollback(True)
    # The median of three whole runs, commit included; the first two are undone (rows deleted,
    # table vacuumed) and queue nothing, the last one's tasks go to the broker and are timed apart.
    job_times, ratios = [], []
    for attempt in range(3):
        last = attempt == 2
        marks.pop("committed", None)
        raw_before = raw_select()
        raw_times.append(raw_before)
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            transaction.on_commit(lambda: marks.setdefault("committed", time.perf_counter()))
            result = reminders.run_reminder_job(
                enqueue=timed_enqueue if last else queue_nothing, today=today, now=now
            )
        job_times.append(marks["committed"] - started)
        ratios.append(job_times[-1] / raw_before)
        if not last:
            Reminder.objects.filter(run=result.run).delete()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE notices_reminder")
    job, raw, ratio = statistics.median(job_times), statistics.median(raw_times), statistics.median(ratios)
    job_queries = len([q for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))])
    expiry = Reminder.objects.filter(kind=Reminder.Kind.EXPIRY).exclude(state=Reminder.State.SKIPPED).count()
    assert len(result.queued) == expiry == DUE == len(enqueued), (len(result.queued), expiry)
    enqueue = marks["enqueue_end"] - marks["enqueue_start"]
    # A second run the same day finds everything recorded.
    started = time.perf_counter()
    again = reminders.run_reminder_job(enqueue=queue_nothing, today=today, now=now)
    rerun = time.perf_counter() - started
    assert not again.queued

    settings.ADMIN_DIGEST_ENABLED = True
    Reminder.objects.filter(kind=Reminder.Kind.DIGEST).delete()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as digest_queries:
        digest = reminders.run_reminder_job(enqueue=queue_nothing, today=today, now=now)
    digests = time.perf_counter() - started

    broker = settings.CELERY_BROKER_URL.split(":")[0]
    return [
        {"figure": f"select + record {DUE:,} due reminders of 1,000,000 certificates vs raw indexed SELECT",
         "measured": f"{job * 1000:.0f} ms vs {raw * 1000:.0f} ms", "ratio": ratio, "target": "<= 5x",
         "ok": ratio <= 5},
        {"figure": "queries of that job (grows with batches, not certificates)",
         "measured": f"{job_queries} queries for {DUE:,} reminders ({result.skipped:,} 30-day skipped)",
         "ratio": None, "target": "constant", "ok": job_queries < 20},
        {"figure": "the same job re-run the same day (nothing left to record)",
         "measured": f"{rerun * 1000:.0f} ms", "ratio": None, "target": "", "ok": None},
        {"figure": "administrators' digests on top (one per administrator of a contract with due IDs)",
         "measured": f"{len(digest.queued):,} digests in {digests * 1000:.0f} ms, "
                     f"{len(digest_queries.captured_queries)} queries",
         "ratio": None, "target": "", "ok": None},
        {"figure": f"enqueue {DUE:,} send tasks ({broker} broker)",
         "measured": f"{enqueue:.2f} s ({DUE / enqueue:,.0f} tasks/s)", "ratio": None, "target": "", "ok": None},
    ]


def _purge(queue: str, broker_url: str) -> None:
    if broker_url.startswith("redis"):
        import redis

        redis.Redis.from_url(broker_url).delete(queue)


def main() -> list[dict]:
    server = postgres_server_url()
    if server is None:
        print("no PostgreSQL on BENCH_DATABASE_URL, DATABASE_URL or 127.0.0.1:5432: reminder bench skipped")
        return [{"figure": "reminder selection over 1,000,000 certificates", "measured": "skipped: no PostgreSQL",
                 "ratio": None, "target": "", "ok": None}]
    workdir = tempfile.mkdtemp(prefix="certportal-bench-reminders-")
    queue = f"bench-reminders-{uuid.uuid4().hex[:8]}"
    broker_url = "redis://127.0.0.1:6379/0" if reachable(*REDIS) else "filesystem://"
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "certportal.settings",
        "DATABASE_URL": (database_url := create_database(server, "reminders")),
        "CERTPORTAL_VAR_DIR": workdir,  # the file broker's folders: not the portal's own queue
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,  # nobody consumes it; deleted afterwards
    })
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    started = _step(f"migrating {database_url.rpartition('/')[2]}")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    today = timezone.localdate(now)
    step = _step(f"  {time.perf_counter() - started:.1f} s; loading 1,000,000 certificates (generate_series)")
    load(today, now)
    _step(f"  {time.perf_counter() - step:.1f} s; measuring")
    try:
        figures = measure(today, now)
    finally:
        _purge(queue, broker_url)
        from django.db import connections

        connections.close_all()
        drop_database(server, database_url)
    for figure in figures:
        print(f"  {figure['figure']}: {figure['measured']}"
              + ("" if figure["ratio"] is None else f" -> {figure['ratio']:.2f}x (target {figure['target']})"))
    return figures


if __name__ == "__main__":
    main()
    sys.exit(0)
