"""Web figures of `make bench`, each a ratio against a baseline measured in the same run.

One gunicorn (its own TLS, client certificates optional, gthread workers) serves both the
portal and the baselines of bench/views.py, on a fresh database: PostgreSQL when
BENCH_DATABASE_URL or DATABASE_URL names one, else SQLite in a temporary folder.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path

from . import load

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-password-2026"
ISSUANCE_IDS = 3000
IN_PROCESS_ROUNDS, IN_PROCESS_CALLS = 5, 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url(workdir: str) -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{workdir}/bench.sqlite3"
    import psycopg

    base, _, _name = url.rpartition("/")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS certportal_bench_web")
        conn.execute("CREATE DATABASE certportal_bench_web")
    return f"{base}/certportal_bench_web"


def setup(workdir: str) -> None:
    """Inside Django: the bench IDs, a certificate and key for the logged-in one, CSRs, TLS files."""
    import django

    django.setup()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from accounts.models import Contract, User
    from certificates.models import Certificate
    from certificates.services import issue_certificate
    from certportal.run import prepare_tls
    from tests.conftest import make_csr

    contract = Contract.objects.create(number="9000001", name="Bench K.K.")
    user = User.objects.create_user("bench-user", "bench@bench.example", PASSWORD, contract=contract,
                                    role=User.Role.USER)
    User.objects.create_user("bench-plain", "plain@bench.example", PASSWORD, contract=contract, role=User.Role.USER)
    pem, key = make_csr(ec.generate_private_key(ec.SECP256R1()))
    certificate = issue_certificate(user=user, csr=pem, via=Certificate.Channel.OPERATOR).certificate
    Path(workdir, "client.pem").write_text(certificate.pem)
    Path(workdir, "client.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    User.objects.bulk_create([
        User(login_id=f"bench-issue-{i:05d}", email=f"i{i}@bench.example", contract=contract, role=User.Role.USER)
        for i in range(ISSUANCE_IDS)
    ])
    csrs = [make_csr()[0].decode() for _ in range(ISSUANCE_IDS)]
    Path(workdir, "csrs.json").write_text(json.dumps(csrs))
    in_process_ids = 2 + IN_PROCESS_ROUNDS * IN_PROCESS_CALLS
    User.objects.bulk_create([
        User(login_id=f"bench-local-{i:05d}", email=f"l{i}@bench.example", contract=contract, role=User.Role.USER)
        for i in range(in_process_ids)
    ])
    local_csrs = [make_csr()[0].decode() for _ in range(in_process_ids)]
    Path(workdir, "local-csrs.json").write_text(json.dumps(local_csrs))
    prepare_tls(["localhost", "127.0.0.1"])


def in_process(workdir: str) -> None:
    """Inside Django, no network and no TLS: the same views called through Django's test client.

    The certificate arrives as nginx passes it (CERTPORTAL_TRUSTED_PROXIES is this address).
    This is the server's own cost per request, the most the figures over the network could
    reach if gunicorn, TLS and the load generator cost nothing. Prints one JSON line.
    """
    import django

    django.setup()
    from urllib.parse import quote

    from django.db import connection
    from django.test import Client

    def per_call(calls) -> tuple[float, int]:
        """Median over rounds of the mean milliseconds per call, and the SQL statements of one call.

        The first call warms up (and may refresh the session); the second is the one counted.
        """
        calls[0]()
        queries = []
        with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
            calls[1]()
        rounds = []
        for r in range(IN_PROCESS_ROUNDS):
            chunk = calls[2 + r * IN_PROCESS_CALLS:2 + (r + 1) * IN_PROCESS_CALLS]
            started = time.perf_counter()
            for call in chunk:
                call()
            rounds.append((time.perf_counter() - started) / len(chunk) * 1000)
        return statistics.median(rounds), len(queries)

    pem = Path(workdir, "client.pem").read_text()
    with_cert = Client(HTTP_X_SSL_CLIENT_CERT=quote(pem), HTTP_X_SSL_CLIENT_VERIFY="SUCCESS",
                       REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    plain = Client(HTTP_HOST="127.0.0.1")
    response = with_cert.post("/", {"login_id": "bench-user", "password": PASSWORD}, secure=True)
    if response.status_code != 302:
        raise RuntimeError(f"in-process bench login failed: {response.status_code}")
    calls = 2 + IN_PROCESS_ROUNDS * IN_PROCESS_CALLS

    def get(client, path):
        def call():
            if client.get(path, secure=True).status_code != 200:
                raise RuntimeError(f"in-process GET {path} failed")
        return [call] * calls

    def post(path, fields_for):
        def make(i):
            def call():
                if plain.post(path, fields_for(i), secure=True).status_code != 201:
                    raise RuntimeError(f"in-process POST {path} failed")
            return call
        return [make(i) for i in range(calls)]

    csrs = json.loads(Path(workdir, "local-csrs.json").read_text())
    figures = {
        "notices": per_call(get(with_cert, "/notices/")),
        "hello": per_call(get(plain, "/bench/hello")),
        "issue": per_call(post("/bench/issue", lambda i: {"login_id": f"bench-local-{i:05d}", "csr": csrs[i]})),
        "write": per_call(post("/bench/write-row", lambda i: {"n": str(i)})),
    }
    print("IN-PROCESS " + json.dumps(figures), flush=True)


def _login(port: int, context, path: str, fields: dict[str, str], with_csrf: bool) -> str:
    """Log in over one TLS connection and return the session cookie header."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    cookies = SimpleCookie()
    headers = {"Referer": f"https://127.0.0.1:{port}/"}
    if with_csrf:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        cookies.load(response.getheader("set-cookie") or "")
        fields = {**fields, "csrfmiddlewaretoken": cookies["csrftoken"].value}
        headers["Cookie"] = f"csrftoken={cookies['csrftoken'].value}"
    body, form_headers = load.form(fields)
    connection.request("POST", path, body=body, headers={**headers, **form_headers})
    response = connection.getresponse()
    response.read()
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            cookies.load(value)
    connection.close()
    if response.status not in (200, 302) or "sessionid" not in cookies:
        raise RuntimeError(f"bench login to {path} failed: {response.status}")
    return f"sessionid={cookies['sessionid'].value}"


def _wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def main(seconds: float = 4.0) -> list[dict]:
    workdir = tempfile.mkdtemp(prefix="certportal-bench-web-")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "CERTPORTAL_VAR_DIR": workdir,
           "DATABASE_URL": _database_url(workdir)}
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True)  # noqa: E731
    run("manage.py", "migrate", "-v0")
    subprocess.run([sys.executable, "manage.py", "init_ca"], cwd=ROOT, check=True,
                   env={**env, "CERTPORTAL_ROOT_CA_PASSPHRASE": "bench-root-passphrase-offline"})
    run("-c", f"import bench.web as w; w.setup({workdir!r})")
    local = subprocess.run(
        [sys.executable, "-c", f"import bench.web as w; w.in_process({workdir!r})"], cwd=ROOT,
        env={**env, "CERTPORTAL_TRUSTED_PROXIES": "127.0.0.1"}, check=True, capture_output=True, text=True,
    )
    own = json.loads(local.stdout.rsplit("IN-PROCESS ", 1)[1])
    port = _free_port()
    tls = Path(workdir, "tls")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "certportal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "16", "--keep-alive", "30",
         "--certfile", str(tls / "server.pem"), "--keyfile", str(tls / "server.key"),
         "--ca-certs", str(tls / "ca-chain.pem"), "--cert-reqs", "1", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    figures = []
    try:
        _wait_for(port, server)
        chain = str(tls / "ca-chain.pem")
        with_cert = (chain, str(Path(workdir, "client.pem")), str(Path(workdir, "client.key")))
        without_cert = (chain,)
        cert_cookie = _login(port, load.tls_context(*with_cert), "/",
                             {"login_id": "bench-user", "password": PASSWORD}, with_csrf=True)
        plain_cookie = _login(port, load.tls_context(*without_cert), "/bench/plain-login",
                              {"login_id": "bench-plain", "password": PASSWORD}, with_csrf=False)

        def get(path: str, cookie: str = ""):
            return lambda _i, _n: ("GET", path, None, {"Cookie": cookie} if cookie else {})

        common = {"host": "127.0.0.1", "port": port, "seconds": seconds}
        # Warm up both paths (imports, template caches, connection pools).
        load.run(**common | {"seconds": 1}, context_args=with_cert, make_request=get("/notices/", cert_cookie),
                 clients=2)
        load.run(**common | {"seconds": 1}, context_args=without_cert,
                 make_request=get("/notices/", plain_cookie), clients=2)

        # The same page twice: bound to the connection's client certificate, and in a plain
        # password-only session over a connection without one.
        # One client at a time: the cost of the binding itself, not which of gunicorn's two workers
        # the connections happened to land on (with several clients that alone moved the figure by
        # a third). Alternated in short rounds so that neither side gets the machine's quieter
        # moments; the median of the per-round median latencies is kept for each.
        rounds = [
            (load.run(**common | {"seconds": seconds / 4}, context_args=with_cert,
                      make_request=get("/notices/", cert_cookie), clients=1),
             load.run(**common | {"seconds": seconds / 4}, context_args=without_cert,
                      make_request=get("/notices/", plain_cookie), clients=1))
            for _ in range(9)
        ]
        bound_ms = statistics.median(pair[0].median_ms for pair in rounds)
        plain_ms = statistics.median(pair[1].median_ms for pair in rounds)
        errors = sum(pair[0].errors + pair[1].errors for pair in rounds)
        figures.append({
            "figure": "important notices bound to a client certificate vs in a plain session (median latency, "
                      "one client)",
            "measured": f"{bound_ms:.2f} ms vs {plain_ms:.2f} ms",
            "ratio": bound_ms / plain_ms, "target": "<= 1.2x",
            "ok": bound_ms / plain_ms <= 1.2 and not errors,
        })

        csrs = json.loads(Path(workdir, "csrs.json").read_text())

        def issue(index: int, n: int):
            slot = (index * 1000 + n) % len(csrs)
            body, headers = load.form({"login_id": f"bench-issue-{slot:05d}", "csr": csrs[slot]})
            return "POST", "/bench/issue", body, headers

        def write(index: int, n: int):
            body, headers = load.form({"n": str(n)})
            return "POST", "/bench/write-row", body, headers

        issued = load.run(**common, context_args=without_cert, make_request=issue, clients=4)
        wrote = load.run(**common, context_args=without_cert, make_request=write, clients=4)
        figures.append({
            "figure": "certificate issuance from a CSR vs bare POST writing one row (throughput, 4 clients)",
            "measured": f"{issued.throughput:.0f}/s vs {wrote.throughput:.0f}/s",
            "ratio": issued.throughput / wrote.throughput, "target": ">= 0.5x",
            "ok": issued.throughput / wrote.throughput >= 0.5 and not issued.errors,
        })

        notices = load.run(**common, context_args=with_cert, make_request=get("/notices/", cert_cookie),
                           clients=50, processes=5)
        hello = load.run(**common, context_args=without_cert, make_request=get("/bench/hello"), clients=50,
                         processes=5)
        figures.append({
            "figure": "important notices vs hello world (throughput, 50 clients)",
            "measured": f"{notices.throughput:.0f}/s (p99 {notices.p99_ms:.0f} ms) vs {hello.throughput:.0f}/s "
                        f"(p99 {hello.p99_ms:.0f} ms)",
            "ratio": notices.throughput / hello.throughput, "target": ">= 0.5x, p99 < 50 ms",
            "ok": notices.throughput / hello.throughput >= 0.5 and notices.p99_ms < 50 and not notices.errors,
        })
        # The server's own cost of each request, without network, TLS or load generator: the
        # ceiling of the two throughput ratios above.
        figures.append({
            "figure": "ceiling, in-process: issuance vs bare POST writing one row (ms per request, queries)",
            "measured": f"{own['issue'][0]:.2f} ms ({own['issue'][1]} queries) vs {own['write'][0]:.2f} ms "
                        f"({own['write'][1]})",
            "ratio": own["write"][0] / own["issue"][0], "target": "(throughput ceiling)", "ok": None,
        })
        figures.append({
            "figure": "ceiling, in-process: important notices vs hello world (ms per request, queries)",
            "measured": f"{own['notices'][0]:.2f} ms ({own['notices'][1]} queries) vs {own['hello'][0]:.2f} ms "
                        f"({own['hello'][1]})",
            "ratio": own["hello"][0] / own["notices"][0], "target": "(throughput ceiling)", "ok": None,
        })
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


if __name__ == "__main__":
    for figure in main():
        print(f"{figure['figure']}: {figure['measured']} -> {figure['ratio']:.2f}x (target {figure['target']})"
              f"{'' if figure['ok'] else '  MISSED'}")
