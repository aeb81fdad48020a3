"""Whole stacks for the end-to-end journey, each restartable with its clock moved forward.

Two stacks, as a bank would run the portal:

- embedded (`make run`): gunicorn terminating TLS itself, SQLite, a Celery worker with beat
  on the filesystem broker, e-mail written to files in the var directory;
- production (deploy/): Debian's nginx with deploy/nginx.conf (mutual TLS, CRL) in front of
  gunicorn on plain HTTP with production settings, PostgreSQL, a Celery worker with beat on
  Redis, e-mail through anymail's Postmark backend to the local stand-in. With `nodes=2`, as
  deploy/README.md's "Several nodes": two gunicorn nodes in nginx's upstream and two workers,
  each with its own beat, on the same PostgreSQL and Redis; nginx writes which node served
  each request, and routes a journey's steps so that each lands on another node than the last
  (`route_across_nodes`).

Every process (gunicorn, the worker and its beat, nginx, `export_crl`) can be restarted
under Debian's libfaketime with the same offset, so that the whole stack lives on a later
day while the test process, the database server and the browser keep the real time. The
project's code is not touched: it reads the moved clock as it would read the real one.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from .esp_standin import PostmarkStandIn
from .servers import (
    BASE_DIR,
    NGINX,
    Portal,
    Server,
    free_port,
    nginx_main_config,
    nginx_site,
    plain_get,
    production_environment,
    server_environment,
    start_gunicorn,
    start_process,
    unix_socket_path,
    wait_until_serving,
)
from .servers import Browser as TLSClient

# Debian's libfaketime (package faketime), in the machine's multiarch directory.
FAKETIME_LIBRARY = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))),
                        Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"))
WORKER_START_TIMEOUT = 40.0


def require_faketime() -> None:
    if not FAKETIME_LIBRARY.exists():
        pytest.skip(f"needs Debian's libfaketime at {FAKETIME_LIBRARY} (apt-get install faketime; CI installs it)")


def faketime_environment(offset_seconds: int) -> dict[str, str]:
    """libfaketime moving a process's clocks `offset_seconds` ahead."""
    if not offset_seconds:
        return {}
    require_faketime()
    return {
        "LD_PRELOAD": str(FAKETIME_LIBRARY),
        "FAKETIME": f"{offset_seconds:+d}",
        # Monotonic clocks move by the same offset (libfaketime 0.9.10 breaks Python's time.sleep otherwise).
        "FAKETIME_DONT_RESET": "1",  # forked children (gunicorn's and Celery's workers) keep the offset
        "NO_FAKE_STAT": "1",  # file times as written: gunicorn's heartbeat writes monotonic times there
    }


@dataclass
class Mail:
    to: str
    subject: str
    text: str


@dataclass
class Stack:
    """One portal with its worker and beat, started with a clock offset and restarted with another."""

    kind: str  # "embedded" or "production"
    tmp_path: Path
    var_dir: Path
    environment: dict[str, str]  # for every process of the stack (database, broker, queue, e-mail)
    postmark: PostmarkStandIn | None = None
    nodes: int = 1  # gunicorn nodes behind nginx, each with its worker and beat (production only)
    offset_seconds: int = 0
    portal: Portal | None = None
    workers: list[Server] = field(default_factory=list)
    node_of: dict[str, int] = field(default_factory=dict)  # nginx's $upstream_addr -> node, over every start
    node_sockets: list[Path] = field(default_factory=list)
    starts: int = 0
    running: list[Server] = field(default_factory=list)  # every process started, stopped even after a failed start

    @property
    def origin(self) -> str:
        return f"https://{self.portal.host}:{self.portal.port}"

    @property
    def name(self) -> str:
        return self.kind if self.nodes == 1 else f"{self.kind}-{self.nodes}-nodes"

    def start(self, *, at: datetime | None = None) -> Portal:
        """Start every process; with `at`, their clocks read `at` as they start (and run on from there)."""
        self.offset_seconds = round(at.timestamp() - time.time()) if at is not None else 0
        self.starts += 1
        # A beat that has run every day would next fire at today's REMINDER_TIME: start it without
        # the schedule state of the previous start (which would make it fire at once, catching up).
        for state in (self.var_dir / "celery").glob("beat-schedule*"):  # the shelve's .dat, .dir, .bak
            state.unlink()
        env = {**self.environment, **faketime_environment(self.offset_seconds)}
        if self.kind == "production":
            # nginx's ports, known before any process starts: e-mails link to where nginx serves the portal.
            self.https_port, self.http_port = free_port(), free_port()
            env["CERTPORTAL_PUBLIC_BASE_URL"] = f"https://127.0.0.1:{self.https_port}"
        self.workers = [self._start_worker(env, node) for node in range(self.nodes)]
        if self.kind == "embedded":
            self.portal = self._start_embedded(env)
        else:
            self.portal = self._start_production(env)
        self._wait_for_worker()
        return self.portal

    def stop(self) -> None:
        """All processes asked to stop at once, then waited for.

        The worker gets a cold shutdown (SIGQUIT): the test has read every e-mail it waits for, and
        a warm one waits seconds for the embedded beat.
        """
        for server in self.running:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGQUIT if server in self.workers else signal.SIGTERM)
        for server in self.running:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        self.running = []
        self.workers = []
        self.portal = None

    def restart(self, *, at: datetime) -> Portal:
        self.stop()
        return self.start(at=at)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ({s.log.name})\n{s.output()[-3000:]}" for s in self.running)

    # --- processes -------------------------------------------------------------------

    def _start_worker(self, env: dict[str, str], node: int = 0) -> Server:
        # As deploy/certportal-worker.service and `make run` run it: one worker with beat inside.
        command = [
            sys.executable, "-m", "celery", "-A", "certportal", "worker", "--beat", "--loglevel", "INFO",
            "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"e2e-{uuid.uuid4().hex[:8]}@%h",
        ]
        log = self.tmp_path / f"worker-{self.starts}.log"
        if node:  # each node's beat keeps its own schedule state, as on its own machine
            command += ["--schedule", str(self.var_dir / "celery" / f"beat-schedule-node{node}")]
            log = self.tmp_path / f"worker-{self.starts}-node{node}.log"
        worker = start_process("celery-worker-beat", command, log=log, env=env)
        self.running.append(worker)
        return worker

    def _wait_for_worker(self) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        for worker in self.workers:
            while " ready." not in worker.output():
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Celery worker did not start:\n{worker.output()[-4000:]}")
                time.sleep(0.1)

    def _start_embedded(self, env: dict[str, str]) -> Portal:
        server, port, tls_files = start_gunicorn(
            self.tmp_path, tls=True, name=f"gunicorn-{self.starts}", environment=env
        )
        self.running.append(server)
        portal = Portal(host="127.0.0.1", port=port, ca_chain=tls_files.server_ca, servers=[server])
        wait_until_serving(server, lambda: TLSClient(portal).get("/pki/ca.pem"))
        return portal

    def _start_production(self, env: dict[str, str]) -> Portal:
        gunicorns, sockets = [], []
        for node in range(self.nodes):
            name = f"gunicorn-{self.starts}" + (f"-node{node}" if node else "")
            sockets.append(unix_socket_path(f"stack-{self.starts}-{node}"))
            gunicorn, upstream_port, node_tls = start_gunicorn(
                self.tmp_path, tls=False, name=name, environment=env, unix_socket=sockets[-1]
            )
            if not node:
                tls_files = node_tls  # nginx's server certificate and client CA: the first node's
            self.running.append(gunicorn)
            gunicorns.append((gunicorn, upstream_port))
        self.node_of.update({f"unix:{socket}": node for node, socket in enumerate(sockets)})
        self.node_sockets = sockets  # this start's: what nginx reaches each node on
        prefix = self.tmp_path / f"nginx-{self.starts}"
        prefix.mkdir()
        self.crl = prefix / "crl.pem"
        self.export_crl()  # what certportal-crl.service writes, signed on the stack's day
        https_port, http_port = self.https_port, self.http_port
        site = prefix / "certportal.conf"
        text = nginx_site(https_port=https_port, http_port=http_port, upstream_socket=sockets[0],
                          tls_dir=tls_files.client_ca.parent, crl=self.crl)
        if self.nodes > 1:
            text = route_across_nodes(text, sockets, log=prefix / "nodes.log")
        site.write_text(text)
        config = prefix / "nginx.conf"
        clock = faketime_environment(self.offset_seconds)
        # nginx gives its worker processes only the variables named by `env`; libfaketime re-reads FAKETIME.
        keep = "".join(f"env {name};\n" for name in clock)
        config.write_text(keep + nginx_main_config(prefix=prefix, site=site))
        nginx_env = {**os.environ, **clock}
        nginx = start_process("nginx", [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
                              log=prefix / "stdout.log", env=nginx_env)
        self.running.append(nginx)
        portal = Portal(host="127.0.0.1", port=https_port, ca_chain=tls_files.server_ca,
                        servers=[nginx, *(gunicorn for gunicorn, _port in gunicorns)],
                        http_port=http_port, upstream_port=gunicorns[0][1])
        for gunicorn, port in gunicorns:
            wait_until_serving(gunicorn, lambda port=port: plain_get("127.0.0.1", port, "/pki/ca.pem"))
        wait_until_serving(nginx, lambda: TLSClient(portal).get("/pki/ca.pem"))
        return portal

    def served(self) -> list[Served]:
        """Every request nginx relayed to a node since the first start, in order (`route_across_nodes`'s log)."""
        found = []
        for log in sorted(self.tmp_path.glob("nginx-*/nodes.log"), key=lambda path: int(path.parent.name[6:])):
            for line in log.read_text().splitlines():
                method, status, uri, upstream = line.split(" ", 3)
                found.append(Served(method, uri.split("?")[0], int(status), self.node_of.get(upstream)))
        return found

    def export_crl(self) -> None:
        env = {**self.environment, **faketime_environment(self.offset_seconds)}
        done = subprocess.run([sys.executable, "manage.py", "export_crl", str(self.crl)], cwd=BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def reload_crl(self) -> None:
        """certportal-crl.service: export the CRLs and reload nginx, which then refuses revoked certificates."""
        assert self.kind == "production"
        self.export_crl()
        nginx = self.portal.servers[0]
        error_log = self.crl.parent / "error.log"
        before = error_log.read_text(errors="replace").count("reconfiguring")
        nginx.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while error_log.read_text(errors="replace").count("reconfiguring") == before:
            assert time.monotonic() < deadline, "nginx did not reload"
            time.sleep(0.1)
        time.sleep(0.5)  # the new worker process takes over

    # --- e-mail actually sent ------------------------------------------------------

    def mails(self) -> list[Mail]:
        if self.postmark is not None:
            return [Mail(m.to, m.subject, m.text) for m in list(self.postmark.accepted)]
        found = []
        folder = self.var_dir / "mail"
        for path in sorted(folder.glob("*.log")) if folder.exists() else []:
            # Django's file backend: each message as bytes, then a line of 79 dashes.
            for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
                if raw.strip():
                    message = email.message_from_bytes(raw, policy=email.policy.default)
                    found.append(Mail(str(message["To"]), str(message["Subject"]),
                                      message.get_body(("plain",)).get_content()))
        return found

    def wait_for_mail(self, predicate, *, timeout: float, what: str) -> Mail:
        deadline = time.monotonic() + timeout
        while True:
            for mail in self.mails():
                if predicate(mail):
                    return mail
            if time.monotonic() > deadline:
                sent = "\n".join(f"  to {m.to}: {m.subject}" for m in self.mails())
                pytest.fail(f"no e-mail {what} within {timeout}s; sent:\n{sent}\n{self.logs()}")
            time.sleep(0.2)


@dataclass(frozen=True)
class Served:
    method: str
    path: str
    status: int
    node: int | None  # which node answered (None: nginx itself, or more than one node tried)


# deploy/nginx.conf's public location, whose requests the test's nginx sends to a chosen node.
PUBLIC_LOCATION = """    location / {
        proxy_pass http://certportal;
    }"""


def route_across_nodes(site: str, sockets: list[Path], *, log: Path) -> str:
    """deploy/nginx.conf with every node in its upstream, each step of a customer's journey sent to another node.

    The upstream `certportal` (round robin) gets every node, as deploy/README.md's "Several nodes"
    has it; it still serves the CRL, OCSP and /operator/. The customer's pages (`location /`) go by
    method, so that no step finds its state in a node's memory: each page (and its CSRF token) is
    shown by the first node and its form posted to the last, whose redirect is followed on the
    first again; the one-time code is e-mailed by a POST on the last node and checked by a POST on
    the first. Which node served each request is logged (`Stack.served`).
    """
    nodes = "".join(f"    server unix:{socket};\n" for socket in sockets)
    site = site.replace(f"    server unix:{sockets[0]};\n", nodes)
    assert site.count(PUBLIC_LOCATION) == 1, "deploy/nginx.conf's location / changed"
    site = site.replace(PUBLIC_LOCATION, PUBLIC_LOCATION.replace("http://certportal;", "http://$certportal_node;"))
    first, last = "certportal_node0", f"certportal_node{len(sockets) - 1}"
    each = "".join(f"upstream certportal_node{n} {{\n    server unix:{socket};\n    keepalive 4;\n}}\n"
                   for n, socket in enumerate(sockets))
    return f"""{each}
map "$request_method $uri" $certportal_node {{
    default certportal;
    "~^(GET|HEAD) " {first};
    "~^POST " {last};
    "POST /certificate/obtain/code/" {first};
}}
log_format certportal_nodes '$request_method $status $request_uri $upstream_addr';
access_log {log} certportal_nodes;

{site}"""


def embedded_stack(tmp_path: Path) -> Stack:
    """SQLite (this test's database file), the filesystem broker, e-mail to files: nothing else to install."""
    var_dir = tmp_path / "var"
    environment = server_environment(var_dir, CELERY_BROKER_URL="filesystem://", CERTPORTAL_LOG_LEVEL="INFO")
    environment.pop("CERTPORTAL_EMAIL_BACKEND", None)
    return Stack("embedded", tmp_path, var_dir, environment)


def production_stack(tmp_path: Path, *, redis_url: str, postmark: PostmarkStandIn, nodes: int = 1) -> Stack:
    """PostgreSQL (this test's database), Redis with a queue of its own, anymail to the Postmark stand-in."""
    var_dir = tmp_path / "var"
    environment = server_environment(var_dir, **{
        **production_environment(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": f"e2e-{uuid.uuid4().hex[:12]}",  # parallel runs share the Redis server
        "CERTPORTAL_LOG_LEVEL": "INFO",
        **postmark.anymail_env(),
    })
    # Debug off: WhiteNoise serves /static/ (the enrollment page's script) only from STATIC_ROOT.
    done = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=BASE_DIR,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return Stack("production", tmp_path, var_dir, environment, postmark=postmark, nodes=nodes)
