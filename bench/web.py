"""Web figure of `make bench`: 重要なお知らせ under the 09:00 load, through the production path.

50 customers, each logged in as an ID of its own with its own client certificate, read
重要なお知らせ again and again with a think time of 0.5 to 1.5 s between pages (closed
loop: the next page is asked for only after the previous one arrived). Served by
bench/stack.py (nginx with mutual TLS in front of gunicorn's production workers, on a
PostgreSQL database of this run's own, dropped at the end). The target is the latency a
customer sees: p99 under 50 ms (from the request sent to the page read, on a kept-alive
connection whose TLS handshake came before, as a browser's does).

Measured in the same run at the same load, in alternating rounds: the fair peer (bench/views.py peer_notices, a
stock Django page with a database session doing the same reads), for the ratio.
"""

from __future__ import annotations

import http.client
import os
import ssl
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from . import load
from . import stack as production
from .databases import create_database, drop_database, postgres_server_url

PASSWORD = "Bench-password-2026"
USERS, PROCESSES = 50, 5
THINK = (0.5, 1.5)  # seconds between a page and the next, uniformly drawn
ROUNDS = 4
TARGET_P99_MS = 50.0


def setup(workdir: str) -> None:
    """USERS certificate IDs (certificate and key on disk), USERS password-only IDs for the peer, two notices."""
    from cryptography.hazmat.primitives import serialization
    from django.utils import timezone

    from accounts.models import Contract, User
    from certificates.models import Certificate
    from certificates.services import issue_certificate
    from notices.models import Notice
    from tests.support.pki import make_csr

    contract = Contract.objects.create(number="9300001", name="Bench Web K.K.")
    for i in range(USERS):
        user = User.objects.create_user(f"bench-web-{i:02d}", f"w{i}@bench.example", PASSWORD, contract=contract,
                                        role=User.Role.USER)
        User.objects.create_user(f"bench-peer-{i:02d}", f"p{i}@bench.example", PASSWORD, contract=contract,
                                 role=User.Role.USER)
        pem, key = make_csr()
        certificate = issue_certificate(user=user, csr=pem, via=Certificate.Channel.OPERATOR).certificate
        Path(workdir, f"{user.login_id}.pem").write_text(certificate.pem)
        Path(workdir, f"{user.login_id}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for n in range(2):  # as bench/pages.py: a bank usually has a couple of notices up
        Notice.objects.create(title_ja=f"メンテナンス {n}", title_en=f"Maintenance {n}",
                              body_ja="日曜日 2:00〜4:00 はサービスを停止します。\nご迷惑をおかけします。",
                              body_en="The service stops on Sunday 02:00-04:00.\nSorry.",
                              published_from=timezone.now() - timezone.timedelta(days=1))


def log_in(port: int, context: ssl.SSLContext, path: str, login_id: str, *, with_csrf: bool) -> str:
    """Log in over one TLS connection; the session cookie header."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
    origin = f"https://127.0.0.1:{port}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"{origin}/", "Origin": origin}
    fields = {"login_id": login_id, "password": PASSWORD}
    try:
        if with_csrf:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            cookies = SimpleCookie(response.getheader("Set-Cookie") or "")
            fields["csrfmiddlewaretoken"] = token = cookies["csrftoken"].value
            headers["Cookie"] = f"csrftoken={token}"
        connection.request("POST", path, body=urlencode(fields), headers=headers)
        response = connection.getresponse()
        response.read()
        cookies = SimpleCookie()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                cookies.load(value)
    finally:
        connection.close()
    if response.status not in (200, 302) or "sessionid" not in cookies:
        raise RuntimeError(f"bench login of {login_id} to {path} failed: {response.status}")
    return f"sessionid={cookies['sessionid'].value}"


def under_load(port: int, chain: str, workdir: str, seconds: float) -> tuple[load.Result, load.Result]:
    """(重要なお知らせ, its fair peer): USERS users each, one after the other, with think time."""

    def certificate_of(index: int) -> tuple[str, str, str]:
        return chain, f"{workdir}/bench-web-{index:02d}.pem", f"{workdir}/bench-web-{index:02d}.key"

    notices_cookies = [log_in(port, load.tls_context(*certificate_of(i)), "/", f"bench-web-{i:02d}", with_csrf=True)
                       for i in range(USERS)]
    peer_cookies = [log_in(port, load.tls_context(chain), "/bench/plain-login", f"bench-peer-{i:02d}",
                           with_csrf=False) for i in range(USERS)]

    def get(path: str, cookies: list[str]):
        return lambda index, _n: ("GET", path, None, {"Cookie": cookies[index]})

    common = {"host": "127.0.0.1", "port": port, "clients": USERS, "processes": PROCESSES, "think": THINK}
    # Warm-up: every worker's imports, template and connection set up, every session's idle stamp refreshed.
    load.run(**common | {"seconds": 3.0}, context_args=certificate_of, make_request=get("/notices/", notices_cookies))
    load.run(**common | {"seconds": 3.0}, context_args=(chain,), make_request=get("/bench/peer-notices", peer_cookies))
    # In alternating rounds, so that neither page gets the machine's quieter moments alone.
    notices = peer = load.Result(requests=0, errors=0, seconds=0.0, latencies=[])
    for _ in range(ROUNDS):
        notices = notices + load.run(**common | {"seconds": seconds / ROUNDS}, context_args=certificate_of,
                                     make_request=get("/notices/", notices_cookies))
        peer = peer + load.run(**common | {"seconds": seconds / ROUNDS}, context_args=(chain,),
                               make_request=get("/bench/peer-notices", peer_cookies))
    return notices, peer


def main(seconds: float = 32.0) -> list[dict]:
    server = postgres_server_url()
    if server is None or not production.available():
        reason = "no PostgreSQL" if server is None else f"no nginx at {production.NGINX}"
        print(f"web bench skipped: {reason}")
        return [{"figure": "important notices under load", "measured": f"skipped: {reason}", "ratio": None,
                 "target": "", "ok": None}]
    workdir = tempfile.mkdtemp(prefix="certportal-bench-web-")
    database_url = create_database(server, "web")
    env = production.production_env(
        {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": database_url}, workdir)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0)
        production.init_ca()
        setup(workdir)
        connections.close_all()
        stack = production.start(env, workdir)
        try:
            notices, peer = under_load(stack.https_port, str(stack.ca_chain), workdir, seconds)
        finally:
            stack.stop()
    finally:
        connections.close_all()
        drop_database(server, database_url)

    def summary(result: load.Result) -> str:
        return (f"p99 {result.p99_ms:.1f} ms, median {result.median_ms:.1f} ms, {result.throughput:.0f}/s"
                + (f", {result.errors} errors" if result.errors else ""))

    figure = {
        "figure": f"important notices at {USERS} users (think {THINK[0]}-{THINK[1]} s, closed loop; nginx + "
                  f"gunicorn {production.PRODUCTION_WORKERS} sync workers) vs its fair peer at the same load",
        "measured": f"{summary(notices)} vs {summary(peer)}",
        "ratio": notices.p99_ms / peer.p99_ms,
        "target": f"p99 < {TARGET_P99_MS:.0f} ms",
        "ok": notices.p99_ms < TARGET_P99_MS and not notices.errors,
    }
    print(f"  {figure['figure']}: {figure['measured']} (target {figure['target']})")
    return [figure]


if __name__ == "__main__":
    main()
