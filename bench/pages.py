"""In-process figures of `make bench`: the CPU one request costs the portal, against honest baselines.

Each request goes through Django's own WSGI handler, as gunicorn calls it, so that
everything a real request pays is counted, the database health check at the start of the
request included (Django's test client skips it). No network, TLS or load generator:
CPU time of this process (time.process_time) per request, the median over rounds in which the
page and its baselines take turns; each ratio is the median of the rounds' ratios.

- 重要なお知らせ, bound to its client certificate as nginx passes it, against
  - the fair peer: a stock Django page with a database session, the same reads done the
    ordinary way and a similar template (bench/views.py peer_notices), and
  - the raw floor: the very statements the notices page sent, through psycopg's cursor,
    and the page's facts written into a minimal HTML string.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

from .databases import create_database, drop_database, postgres_server_url

PASSWORD = "Bench-password-2026"
ROUNDS, CALLS = 7, 200
TARGETS = {"peer": 1.0, "floor": 3.0}


class Counted:
    """Every statement sent on the default connection while active, health check included."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, params))
        return execute(sql, params, many, context)


def wsgi_get(handler, path: str, extra: dict[str, str]):
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "443", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        **extra,
    }
    status = []
    body = b"".join(handler(environ, lambda s, headers, exc_info=None: status.append(s)))
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"GET {path}: {status[0] if status else 'no answer'}")
    return body


def cookie_header(client) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items() if morsel.value)


def cpu_ms(calls: dict[str, Callable[[], object]]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """CPU milliseconds per call of each of `calls`: the median over ROUNDS of a round's mean, with each round's
    means. The calls take turns within every round, so that a ratio compares them under the same load of
    this shared machine, not the page in a quiet minute and its floor in a busy one."""
    for call in calls.values():
        for _ in range(20):
            call()
    rounds = []
    for _ in range(ROUNDS):
        round_ms = {}
        for name, call in calls.items():
            started = time.process_time()
            for _ in range(CALLS):
                call()
            round_ms[name] = (time.process_time() - started) / CALLS * 1000
        rounds.append(round_ms)
    return {name: statistics.median(r[name] for r in rounds) for name in calls}, rounds


def ratio(rounds: list[dict[str, float]], page: str, baseline: str) -> float:
    """The median over rounds of page / baseline, each round's pair measured side by side."""
    return statistics.median(r[page] / r[baseline] for r in rounds)


def statements_of(call) -> list[tuple[str, object]]:
    """The statements `call` sends, with the health check's SELECT 1 (sent outside execute wrappers) whenever
    it sends one: it goes through the psycopg connection's own cursor, which is counted here."""
    from django.db import connection

    counted = Counted()
    is_usable = connection.is_usable

    def health_check() -> bool:
        raw = connection.connection
        cursor = raw.cursor

        def counting_cursor(*args, **kwargs):
            counted.statements.append(("SELECT 1", None))
            return cursor(*args, **kwargs)

        raw.cursor = counting_cursor
        try:
            return is_usable()
        finally:
            del raw.cursor

    connection.is_usable = health_check
    try:
        with connection.execute_wrapper(counted):
            call()
    finally:
        del connection.is_usable
    return counted.statements


def page_calls() -> tuple[dict[str, Callable[[], object]], list, list]:
    """Inside Django (bench.settings, debug off): the IDs, their sessions, and the three calls measured
    (the page, its fair peer, its raw floor), with the statements the page and the peer send."""
    from cryptography.hazmat.primitives import serialization
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test import Client

    from accounts.models import Contract, User
    from certificates.models import Certificate
    from certificates.services import issue_certificate
    from notices.models import Notice
    from tests.support.pki import make_csr

    contract = Contract.objects.create(number="9200001", name="Bench Pages K.K.")
    user = User.objects.create_user("bench-pages", "pages@bench.example", PASSWORD, contract=contract,
                                    role=User.Role.USER)
    User.objects.create_user("bench-peer", "peer@bench.example", PASSWORD, contract=contract, role=User.Role.USER)
    certificate = issue_certificate(user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR).certificate
    issue_certificate(user=User.objects.get(login_id="bench-peer"), csr=make_csr()[0],
                      via=Certificate.Channel.OPERATOR)
    from django.utils import timezone

    for n in range(2):  # two published notices, as a bank usually has a couple
        Notice.objects.create(title_ja=f"メンテナンス {n}", title_en=f"Maintenance {n}",
                              body_ja="日曜日 2:00〜4:00 はサービスを停止します。\nご迷惑をおかけします。",
                              body_en="The service stops on Sunday 02:00-04:00.\nSorry.",
                              published_from=timezone.now() - timezone.timedelta(days=1))
    pem = certificate.x509.public_bytes(serialization.Encoding.PEM).decode()
    proxied = {"HTTP_X_SSL_CLIENT_CERT": quote(pem, safe=""), "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
               "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_REAL_IP": "192.0.2.10"}

    bound = Client(**{"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", **proxied})
    if bound.post("/", {"login_id": "bench-pages", "password": PASSWORD}, secure=True).status_code != 302:
        raise RuntimeError("bench login failed")
    plain = Client(REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    answer = plain.post("/bench/plain-login", {"login_id": "bench-peer", "password": PASSWORD}, secure=True)
    if answer.status_code != 200:
        raise RuntimeError("bench plain login failed")
    handler = WSGIHandler()
    # Every cookie a browser holds by now: the session's, and the CSRF cookie its first page set (without
    # it each request would make and set a new one, which no browser asks for twice).
    for client, page in ((bound, "/notices/"), (plain, "/bench/peer-notices")):
        if client.get(page, secure=True).status_code != 200:
            raise RuntimeError(f"bench GET {page} failed")
    notices_env = {**proxied, "HTTP_COOKIE": cookie_header(bound)}
    peer_env = {"HTTP_COOKIE": cookie_header(plain)}

    def notices():
        return wsgi_get(handler, "/notices/", notices_env)

    def peer():
        return wsgi_get(handler, "/bench/peer-notices", peer_env)

    notices()  # the first request may refresh the session's idle stamp
    peer()
    sent = statements_of(notices)
    peer_sent = statements_of(peer)

    def floor():
        """The notices page's statements through psycopg's own cursor, then its facts in minimal HTML."""
        rows = []
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:  # psycopg's own, on the connection Django holds
            for sql, params in sent:
                cursor.execute(sql, params)
                rows.append(cursor.fetchall() if cursor.description else None)
        facts = "".join(f"<li>{html.escape(str(row))}</li>" for result in rows if result for row in result)
        return f"<!doctype html><title>重要なお知らせ</title><h1>重要なお知らせ</h1><ul>{facts}</ul>"

    floor()
    return {"notices": notices, "peer": peer, "floor": floor}, sent, peer_sent


def measure() -> dict:
    """The three calls' CPU per request, the ratios, and the statements counted."""
    calls, sent, peer_sent = page_calls()
    medians, rounds = cpu_ms(calls)
    return {
        **medians, "vs_peer": ratio(rounds, "notices", "peer"), "vs_floor": ratio(rounds, "notices", "floor"),
        "notices_statements": len(sent), "peer_statements": len(peer_sent),
        "health_check": any(sql.strip().upper() == "SELECT 1" for sql, _ in sent),
    }


@contextlib.contextmanager
def portal_database(server: str, name: str) -> Iterator[None]:
    """Django set up as the production worker is (bench.settings), on a migrated database of this run's own
    with the CA created; the database is dropped afterwards."""
    from . import stack as production

    workdir = tempfile.mkdtemp(prefix=f"certportal-bench-{name}-")
    database_url = create_database(server, name)
    os.environ.update(production.production_env(
        {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": database_url}, workdir,
        proxy_socket=False))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0)
        production.init_ca()
        yield
    finally:
        connections.close_all()
        drop_database(server, database_url)


def main() -> list[dict]:
    server = postgres_server_url()
    if server is None:
        print("pages bench skipped: no PostgreSQL")
        return [{"figure": "important notices, CPU per request", "measured": "skipped: no PostgreSQL",
                 "ratio": None, "target": "", "ok": None}]
    with portal_database(server, "pages"):
        got = measure()
    print("  " + json.dumps(got))
    notices, peer, floor, vs_peer, vs_floor = (got[key] for key in ("notices", "peer", "floor", "vs_peer", "vs_floor"))
    health = (" incl. the health check's SELECT 1" if got["health_check"]
              else "; the health check sent none: nothing to read on the idle connection")
    return [
        {"figure": f"important notices vs its fair peer (in-process CPU per request; statements{health})",
         "measured": f"{notices:.2f} ms ({got['notices_statements']}) vs {peer:.2f} ms ({got['peer_statements']})",
         "ratio": vs_peer, "target": f"<= {TARGETS['peer']:.1f}x", "ok": vs_peer <= TARGETS["peer"]},
        {"figure": "important notices vs its raw floor (same statements through psycopg, minimal HTML)",
         "measured": f"{notices:.2f} ms vs {floor:.2f} ms",
         "ratio": vs_floor, "target": f"<= {TARGETS['floor']:.1f}x", "ok": vs_floor <= TARGETS["floor"]},
    ]


if __name__ == "__main__":
    for row in main():
        print(row)
