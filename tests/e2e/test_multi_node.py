"""More than one node, as a bank runs the portal (deploy/README.md, "Several nodes").

Two gunicorn nodes behind one Debian nginx (deploy/nginx.conf, its upstream given both), two
Celery workers each with its own beat, one Redis and one PostgreSQL. The workers run under
libfaketime (tests/support/stack.py) from 08:59:35 in Japan, so that both beats fire the 09:00 reminder
job for real. One test walks all of it, to start the cluster once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.japan_time import JAPAN
from accounts.models import JobRun
from certificates.models import Certificate
from notices.models import Reminder
from tests.support.clients import issue_for
from tests.support.esp_standin import PostmarkStandIn
from tests.support.net import uses_postgresql
from tests.support.personas import PASSWORD
from tests.support.servers import (
    BASE_DIR,
    NGINX,
    Browser,
    Portal,
    free_port,
    nginx_main_config,
    nginx_site,
    plain_get,
    production_environment,
    server_environment,
    start_gunicorn,
    start_process,
    unix_get,
    unix_socket_path,
    wait_until_serving,
    write_client_files,
)
from tests.support.stack import faketime_environment

pytestmark = pytest.mark.xdist_group("e2e")
NODES = 2


@pytest.fixture
def cluster(transactional_db, ca, redis_url, tmp_path):
    if not uses_postgresql():
        pytest.skip("several nodes share PostgreSQL (DATABASE_URL=postgres://...; CI sets it)")
    if not Path(NGINX).exists():
        pytest.skip(f"nginx is not installed at {NGINX}")
    postmark = PostmarkStandIn().start()
    queue = f"nodes-{uuid.uuid4().hex[:12]}"
    shared = {**production_environment(), "CELERY_BROKER_URL": redis_url, "CELERY_TASK_DEFAULT_QUEUE": queue,
              **postmark.anymail_env()}
    processes, nodes = [], []
    try:
        for n in range(NODES):
            env = server_environment(tmp_path / f"node-{n}-var", **shared)
            upstream_socket = unix_socket_path(f"node-{n}")
            gunicorn, port, tls_files = start_gunicorn(tmp_path, tls=False, name=f"node-{n}",
                                                                   environment=env, unix_socket=upstream_socket)
            processes.append(gunicorn)
            nodes.append({"port": port, "socket": upstream_socket, "env": env, "gunicorn": gunicorn})
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        crl = prefix / "crl.pem"
        done = subprocess.run([sys.executable, "manage.py", "export_crl", str(crl)], cwd=BASE_DIR,
                              env=nodes[0]["env"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        https_port, http_port = free_port(), free_port()
        site = nginx_site(https_port=https_port, http_port=http_port, upstream_socket=nodes[0]["socket"],
                          tls_dir=tls_files.client_ca.parent, crl=crl)
        both = "".join(f"server unix:{node['socket']};\n    " for node in nodes)
        site = site.replace(f"server unix:{nodes[0]['socket']};", both.rstrip())
        (prefix / "certportal.conf").write_text(site)
        (prefix / "nginx.conf").write_text(nginx_main_config(prefix=prefix, site=prefix / "certportal.conf"))
        nginx = start_process("nginx", [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                                        str(prefix / "error.log")], log=prefix / "stdout.log",
                              env=dict(os.environ))
        processes.append(nginx)
        portal = Portal(host="127.0.0.1", port=https_port, ca_chain=tls_files.server_ca, servers=processes)
        for node in nodes:
            wait_until_serving(node["gunicorn"], lambda port=node["port"]: plain_get("127.0.0.1", port, "/pki/ca.pem"))
        wait_until_serving(nginx, lambda: Browser(portal).get("/pki/ca.pem"))
        # Each node's worker with its beat, their clocks at 08:59:35 in Japan: both beats fire the daily
        # reminder job at 09:00, as on every day of a bank with two nodes.
        clock = faketime_environment(seconds_until_next(clock_time(8, 59, 35)))
        for n, node in enumerate(nodes):
            node["worker"] = start_process(f"worker-{n}", [
                sys.executable, "-m", "celery", "-A", "certportal", "worker", "--beat", "--loglevel", "INFO",
                "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", f"node{n}-{uuid.uuid4().hex[:6]}@%h",
            ], log=tmp_path / f"worker-{n}.log", env={**node["env"], **clock})
            processes.append(node["worker"])
        deadline = time.monotonic() + 40
        while not all(" ready." in node["worker"].output() for node in nodes):
            assert time.monotonic() < deadline, "\n".join(node["worker"].output()[-2000:] for node in nodes)
            time.sleep(0.2)
        yield {"portal": portal, "nodes": nodes, "postmark": postmark, "queue": queue, "redis_url": redis_url}
    finally:
        for process in processes:
            process.stop()
        postmark.stop()


def seconds_until_next(moment: clock_time) -> int:
    """The offset that moves a clock to the next `moment` (Japan time) from now."""
    now = datetime.now(JAPAN)
    target = datetime.combine(now.date(), moment, tzinfo=JAPAN)
    if target <= now:
        target += timedelta(days=1)
    return round(target.timestamp() - time.time())


def requests_served(port: int) -> float:
    """How many requests this node's Django answered, from its own /metrics (asked as the internal side)."""
    text = plain_get("127.0.0.1", port, "/metrics", headers={"X-Certportal-Listener": "internal"}).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "certportal_request_duration_seconds_count" and sample.labels["view"] != "metrics")


def as_proxy(certificate: Certificate, cookies: dict[str, str]) -> dict[str, str]:
    """What nginx passes a node for a browser presenting `certificate` with these cookies."""
    pem = certificate.x509.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "X-SSL-Client-Cert": quote(pem, safe=""), "X-SSL-Client-Verify": "SUCCESS", "X-Forwarded-Proto": "https",
        "X-Certportal-Listener": "public", "Host": "127.0.0.1",
        "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items()),
    }


def test_two_nodes_share_sessions_reminders_and_revocations(cluster, alice, bob, tmp_path):
    nodes, portal, postmark = cluster["nodes"], cluster["portal"], cluster["postmark"]
    # Before the beats' 09:00: alice's and bob's certificates expire in 20 days.
    certificate, key = issue_for(alice)
    issue_for(bob)
    Certificate.objects.update(not_after=timezone.now() + timedelta(days=20))
    certificate.refresh_from_db()
    browser = Browser(portal, write_client_files(tmp_path / "alice", certificate, key))

    # The journey's logged-in part through nginx: the session opened on one node is honoured on the other.
    assert browser.log_in(alice.login_id, PASSWORD).status == 302
    for _ in range(6):
        page = browser.get("/notices/")
        assert page.status == 200 and "重要なお知らせ" in page.text
    served = [requests_served(node["port"]) for node in nodes]
    assert all(count >= 2 for count in served), f"requests per node: {served}"

    # Reminder day: both beats fire the daily job at 09:00 on their clocks; each e-mail goes out once.
    deadline = time.monotonic() + 90
    while JobRun.objects.filter(name="notices.tasks.send_expiry_reminders").count() < NODES or \
            Reminder.objects.exclude(state=Reminder.State.SENT).exists() or not Reminder.objects.exists():
        assert time.monotonic() < deadline, [node["worker"].output()[-3000:] for node in nodes]
        time.sleep(0.3)
    time.sleep(2)  # a second e-mail, were there one, would arrive now
    sent = sorted((mail.to, mail.subject) for mail in postmark.accepted)
    assert len(sent) == len(set(sent)) == Reminder.objects.count() == 3, sent  # alice's, bob's, alice's digest

    # A revocation on node 0 is refused on node 1 at once (no CRL reload: the nodes read the database).
    before = unix_get(nodes[1]["socket"], "/notices/", headers=as_proxy(certificate, browser.cookies))
    assert before.status == 200, before.status  # the same request, answered while the certificate is valid
    done = subprocess.run([sys.executable, "manage.py", "revoke_certificate", certificate.serial_number,
                           "--reason", "key_compromise"], cwd=BASE_DIR, env=nodes[0]["env"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = unix_get(nodes[1]["socket"], "/notices/", headers=as_proxy(certificate, browser.cookies))
    assert answer.status == 302 and "/notices/" not in answer.location.split("?")[0], (answer.status, answer.location)
