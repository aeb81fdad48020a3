"""The production path for `make bench`: Debian's nginx (mutual TLS) in front of gunicorn on PostgreSQL.

The same deploy/nginx.conf and gunicorn worker set-up as deploy/certportal.service, with
this run's ports, files and database. Used by the login and the notices-under-load figures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX = "/usr/sbin/nginx"
PRODUCTION_WORKERS = 4  # deploy/certportal.service


@dataclass
class Stack:
    https_port: int
    ca_chain: Path  # what clients trust: the local TLS CA of the server's certificate
    client_ca: Path  # what nginx verifies client certificates against
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def production_env(base: dict[str, str], workdir: str, *, proxy_socket: bool = True) -> dict[str, str]:
    """deploy/'s settings; in-process figures (no socket to arrive on) trust the proxy by address instead."""
    return {
        **base,
        "CERTPORTAL_DEBUG": "false",
        "CERTPORTAL_PUBLIC_BASE_URL": "https://localhost",
        "CERTPORTAL_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "CERTPORTAL_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnop",
        "CERTPORTAL_ISSUING_CA_PASSPHRASE": "bench-only-ca-passphrase-0123456789",
        "CERTPORTAL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **({"CERTPORTAL_PROXY_SOCKET": "true"} if proxy_socket else {"CERTPORTAL_TRUSTED_PROXIES": "127.0.0.1"}),
        "CERTPORTAL_LOG_LEVEL": "WARNING",
        "CERTPORTAL_VAR_DIR": workdir,
        "CELERY_BROKER_URL": base.get("CELERY_BROKER_URL") or "filesystem://",
    }


def init_ca() -> None:
    """The key ceremony, in this process only: the root's secret is never in the served stack's environment."""
    from django.core.management import call_command
    from django.test import override_settings

    with override_settings(ROOT_CA_PASSPHRASE="bench-root-passphrase-offline"), open(os.devnull, "w") as devnull:
        call_command("init_ca", stdout=devnull)


def _wait(port: int, process: subprocess.Popen, name: str) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start")


def start(env: dict[str, str], workdir: str, *, workers: int = PRODUCTION_WORKERS) -> Stack:
    """gunicorn (sync workers, as in production) behind nginx; needs Django set up in this process."""
    from certportal.run import gunicorn_command, prepare_tls

    files = prepare_tls(["127.0.0.1"], Path(workdir, "tls"))  # the same files for every stack
    # gunicorn on a unix socket, as deploy/certportal.socket hands it over.
    upstream_socket = Path(tempfile.mkdtemp(prefix="gunicorn-", dir=workdir), "gunicorn.sock")
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.bind(str(upstream_socket))
    upstream.listen(1024)
    gunicorn = subprocess.Popen(
        gunicorn_command(bind=f"fd://{upstream.fileno()}", workers=workers, access_log=False),
        cwd=ROOT, env=env, pass_fds=(upstream.fileno(),),
    )
    upstream.close()
    stack = Stack(https_port=0, ca_chain=files.server_ca, client_ca=files.client_ca, processes=[gunicorn])
    try:
        _start_nginx(stack, workdir, upstream_socket)
        _wait(stack.https_port, stack.processes[-1], "nginx")
    except BaseException:
        stack.stop()
        raise
    return stack


def _start_nginx(stack: Stack, workdir: str, upstream_socket: Path) -> None:
    from django.core.management import call_command

    from tests.support.servers import free_port, nginx_main_config, nginx_site

    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    crl = prefix / "crl.pem"
    with open(os.devnull, "w") as devnull:
        call_command("export_crl", str(crl), stdout=devnull)
    https_port, http_port = free_port(), free_port()
    site = prefix / "certportal.conf"
    site.write_text(nginx_site(https_port=https_port, http_port=http_port, upstream_socket=upstream_socket,
                               tls_dir=stack.client_ca.parent, crl=crl))
    config = prefix / "nginx.conf"
    # As many nginx workers as cores, as Debian's own nginx.conf has it.
    config.write_text(nginx_main_config(prefix=prefix, site=site)
                      .replace("worker_processes 1;", "worker_processes auto;")
                      .replace("worker_connections 128;", "worker_connections 1024;")
                      .replace(f"access_log {prefix / 'access.log'};", "access_log off;"))
    nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.https_port = https_port
    stack.processes.append(nginx)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(child) for child in file.read().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_backends(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving this run's database (its own, so no one else's)."""
    import psycopg

    name = database_url.rpartition("/")[2]
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            [name]).fetchall()
    return [pid for (pid,) in rows]


@dataclass
class CpuMeter:
    """CPU seconds spent by every process of the stack: nginx and its workers, gunicorn and its
    workers, and the PostgreSQL backends of this run's database. Robust to a loaded machine, where
    wall-clock throughput mostly measures the other tenants."""

    stack: Stack
    database_url: str
    start: dict[int, float] = field(default_factory=dict)

    def _pids(self) -> dict[int, str]:
        """Every process of the stack, with its part: nginx, gunicorn or postgres."""
        parts = {}
        for process in self.stack.processes:
            part = "nginx" if "nginx" in str(process.args[0]) else "gunicorn"
            for pid in [process.pid, *_children(process.pid)]:
                parts[pid] = part
        parts.update((pid, "postgres") for pid in database_backends(self.database_url))
        return parts

    def _sample(self) -> dict[int, tuple[str, float]]:
        return {pid: (part, seconds) for pid, part in self._pids().items()
                if (seconds := _cpu_seconds(pid)) is not None}

    def begin(self) -> None:
        self.start = self._sample()

    def seconds_by_part(self) -> dict[str, float]:
        """CPU seconds since begin() of nginx, gunicorn and postgres; a process that appeared since counts whole."""
        spent: dict[str, float] = {"nginx": 0.0, "gunicorn": 0.0, "postgres": 0.0}
        for pid, (part, seconds) in self._sample().items():
            spent[part] += seconds - self.start.get(pid, (part, 0.0))[1]
        return spent


def available() -> bool:
    return Path(NGINX).exists() and sys.platform.startswith("linux")
