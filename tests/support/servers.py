"""Real servers for the tests: gunicorn (its own TLS, or plain HTTP behind nginx) and Debian's nginx.

They run as subprocesses against this test process's database (use them with
transactional_db, so that what a test writes is committed and what the server writes is
visible). A `Browser` speaks HTTP over its own TLS connection with or without a client
certificate, keeps cookies like a browser and sends Django's CSRF token.

Loaded as a pytest plugin from tests/conftest.py.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from certportal.run import gunicorn_command, prepare_tls

BASE_DIR = Path(settings.BASE_DIR)
NGINX = "/usr/sbin/nginx"
SITE_TEMPLATE = BASE_DIR / "deploy" / "nginx.conf"
START_TIMEOUT = 30.0
SETUP = "import django; django.setup()"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL of the database this test process set up, for a server subprocess."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def server_environment(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CERTPORTAL_")}
    env.update(
        DJANGO_SETTINGS_MODULE="certportal.settings",
        DATABASE_URL=test_database_url(),
        CERTPORTAL_VAR_DIR=str(var_dir),
        CERTPORTAL_LOG_LEVEL="WARNING",
        PYTHONPATH=str(BASE_DIR),
    )
    env.update(extra)
    return env


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Portal:
    """A running portal: where to reach it and the CA chain that its server certificate chains to."""

    host: str
    port: int
    ca_chain: Path
    servers: list[Server] = field(default_factory=list)
    http_port: int = 0  # nginx's plain-HTTP port (the CRL)
    upstream_port: int = 0  # gunicorn's, behind nginx
    metrics_port: int = 0  # nginx's internal listener for Prometheus
    # (server, probe) pairs still starting: waited for at the first request, so that a test's
    # other fixtures (IDs, certificates) are made while the servers boot.
    starting: list[tuple[Server, Callable[[], object]]] = field(default_factory=list)

    def ensure_serving(self) -> None:
        while self.starting:
            wait_until_serving(*self.starting.pop(0))

    def logs(self) -> str:
        return "\n".join(f"--- {server.name}\n{server.output()[-4000:]}" for server in self.servers)


def start_process(name: str, command: list[str], *, log: Path, env: dict[str, str], pass_fds=()) -> Server:
    handle = log.open("wb")
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               pass_fds=pass_fds)
    handle.close()
    return Server(name=name, process=process, log=log)


def wait_until_serving(server: Server, probe) -> None:
    """Call probe() until it succeeds; fail with the server's output if it dies or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"{server.name} exited with {server.process.returncode}:\n{server.output()[-4000:]}")
        try:
            probe()
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                pytest.fail(f"{server.name} did not answer within {START_TIMEOUT}s:\n{server.output()[-4000:]}")
            time.sleep(0.1)


def production_environment() -> dict[str, str]:
    """Settings as deploy/README.md sets them: debug off, nginx trusted on gunicorn's unix socket only.

    Production names its database, broker and e-mail backend: here this test's database
    (server_environment), the broker the suite runs with and e-mail to files, unless a
    caller overrides them.
    """
    return {
        "CERTPORTAL_DEBUG": "false",
        "CERTPORTAL_PUBLIC_BASE_URL": "https://localhost",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or "filesystem://",
        "CERTPORTAL_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "CERTPORTAL_SECRET_KEY": "test-only-secret-key-for-the-nginx-tests-0123456789",
        # The test process's issuing key; the root's secret is never given to a service.
        "CERTPORTAL_ISSUING_CA_PASSPHRASE": settings.ISSUING_CA_PASSPHRASE,
        "CERTPORTAL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CERTPORTAL_PROXY_SOCKET": "true",
    }


# Unix socket paths must stay under ~100 bytes, which pytest's tmp_path (named after the test) may not.
_SOCKETS = tempfile.TemporaryDirectory(prefix="certportal-sockets-")


def unix_socket_path(name: str) -> Path:
    """A fresh, short path for a gunicorn unix socket (removed with this process's temporary directory)."""
    return Path(tempfile.mkdtemp(prefix=f"{name[:20]}-", dir=_SOCKETS.name)) / "gunicorn.sock"


def start_gunicorn(
    tmp_path: Path, *, tls: bool, name: str = "gunicorn", environment: dict[str, str] | None = None,
    unix_socket: Path | None = None, workers: int = 1,
) -> tuple[Server, int, tuple[Path, Path, Path]]:
    """gunicorn on 127.0.0.1, on a socket this process already listens on (no port race).

    With `unix_socket`, gunicorn listens there too, as production's does for nginx; the TCP port
    stays, so that tests can show what a local TCP client can and cannot do.
    """
    tls_files = prepare_tls(["localhost", "127.0.0.1"], tmp_path / f"{name}-tls")
    chain, cert, key, _server_ca = tls_files
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    listeners = [listener]
    if unix_socket is not None:
        # Made and handed over the way systemd's certportal.socket hands it to gunicorn.
        unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix_listener.bind(str(unix_socket))
        os.chmod(unix_socket, 0o660)
        unix_listener.listen(128)
        listeners.append(unix_listener)
    command = gunicorn_command(
        bind=[f"fd://{each.fileno()}" for each in listeners], workers=workers, access_log=False,
        **({"chain": chain, "cert": cert, "key": key} if tls else {}),
    )
    env = server_environment(tmp_path / f"{name}-var", **(environment or {}))
    server = start_process(name, command, log=tmp_path / f"{name}.log", env=env,
                           pass_fds=tuple(each.fileno() for each in listeners))
    for each in listeners:
        each.close()  # gunicorn holds its own copies
    return server, port, tls_files


@pytest.fixture
def tls_portal(transactional_db, ca, tmp_path) -> Iterator[Portal]:
    """The portal as `make run` serves it: gunicorn terminating TLS itself, client certificate optional."""
    server, port, tls_files = start_gunicorn(tmp_path, tls=True)
    portal = Portal(host="127.0.0.1", port=port, ca_chain=tls_files.server_ca, servers=[server])
    portal.starting.append((server, lambda: Browser(portal).get("/pki/ca.pem")))
    try:
        yield portal
    finally:
        server.stop()


def nginx_site(
    *, https_port: int, http_port: int, upstream_socket: Path, tls_dir: Path, crl: Path, metrics_port: int | None = None
) -> str:
    """deploy/nginx.conf with this machine's ports and files in place of the production ones."""
    site = SITE_TEMPLATE.read_text()
    metrics_port = metrics_port or free_port()
    replacements = {
        "server unix:/run/certportal/gunicorn.sock;": f"server unix:{upstream_socket};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:443 ssl;": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "/etc/certportal/tls/server.pem": str(tls_dir / "server.pem"),
        "/etc/certportal/tls/server.key": str(tls_dir / "server.key"),
        "/etc/certportal/tls/ca-chain.pem": str(tls_dir / "ca-chain.pem"),
        "/var/lib/certportal/crl.pem": str(crl),
        "/srv/certportal/deploy/errors": str(BASE_DIR / "deploy" / "errors"),
        "shared:certportal:10m": f"shared:certportal{https_port}:1m",
        # The internal metrics listener, and Prometheus's address, on this machine.
        "listen 10.0.0.10:9180;": f"listen 127.0.0.1:{metrics_port};",
        "allow 10.0.0.20;": "allow 127.0.0.1;",
        "proxy_set_header Host portal.bank.example;": "proxy_set_header Host 127.0.0.1;",
        "http://127.0.0.1/pki/ocsp": f"http://127.0.0.1:{http_port}/pki/ocsp",
        "shared:certportal_ocsp:1m": f"shared:certportal_ocsp{https_port}:1m",
    }
    for production, here in replacements.items():
        assert production in site, f"deploy/nginx.conf no longer contains {production!r}"
        site = site.replace(production, here)
    return site


def nginx_main_config(*, prefix: Path, site: Path) -> str:
    """A whole nginx.conf around the site: everything nginx writes stays under `prefix`."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read files under a 0700 tmp dir
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
        f"events {{ worker_connections 128; }}\n"
        f"http {{\n    default_type application/octet-stream;\n    access_log {prefix / 'access.log'};\n{temp}\n"
        f"    include {site};\n}}\n"
    )


@pytest.fixture
def nginx_portal(transactional_db, ca, tmp_path) -> Iterator[Portal]:
    """The production path: Debian's nginx terminating TLS in front of gunicorn on its unix socket."""
    if not Path(NGINX).exists():
        pytest.skip(f"nginx is not installed at {NGINX} (CI installs Debian's nginx; see .ci/run)")
    upstream_socket = unix_socket_path("behind-nginx")
    metrics_dir = tmp_path / "prometheus"  # prometheus-client's multiprocess mode, as deploy/ runs it
    metrics_dir.mkdir()
    gunicorn, upstream_port, tls_files = start_gunicorn(
        tmp_path, tls=False, name="gunicorn-behind-nginx",
        environment={**production_environment(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        unix_socket=upstream_socket,
    )
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    crl = prefix / "crl.pem"
    call_command("export_crl", str(crl), stdout=open(os.devnull, "w"))  # noqa: SIM115
    https_port, http_port = free_port(), free_port()
    site = prefix / "certportal.conf"
    metrics_port = free_port()
    site.write_text(nginx_site(https_port=https_port, http_port=http_port, upstream_socket=upstream_socket,
                               tls_dir=tls_files.client_ca.parent, crl=crl, metrics_port=metrics_port))
    config = prefix / "nginx.conf"
    config.write_text(nginx_main_config(prefix=prefix, site=site))
    nginx = start_process("nginx", [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
                          log=prefix / "stdout.log", env=dict(os.environ))
    portal = Portal(host="127.0.0.1", port=https_port, ca_chain=tls_files.server_ca, servers=[nginx, gunicorn],
                    http_port=http_port, upstream_port=upstream_port, metrics_port=metrics_port)
    portal.starting += [
        (gunicorn, lambda: plain_get("127.0.0.1", upstream_port, "/pki/ca.pem")),
        (nginx, lambda: Browser(portal).get("/pki/ca.pem")),
    ]
    try:
        yield portal
    finally:
        nginx.stop()
        gunicorn.stop()
        if os.environ.get("CI") and (prefix / "error.log").exists():
            shutil.copy(prefix / "error.log", tmp_path / "nginx-error.log")


# --- the browser -----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


def plain_get(host: str, port: int, path: str, *, headers: dict[str, str] | None = None,
              source_address: tuple[str, int] | None = None) -> Response:
    connection = http.client.HTTPConnection(host, port, timeout=10, source_address=source_address)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_get(path: Path, url: str, *, headers: dict[str, str] | None = None) -> Response:
    """GET over gunicorn's unix socket, as nginx reaches it (and no TCP client can)."""
    connection = _UnixHTTPConnection(path)
    try:
        connection.request("GET", url, headers={"Host": "127.0.0.1", **(headers or {})})
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def write_client_files(directory: Path, certificate, key) -> tuple[Path, Path]:
    """A client certificate and its unencrypted private key as PEM files, for ssl.load_cert_chain."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{certificate.serial_number}.pem"
    key_path = directory / f"{certificate.serial_number}.key"
    cert_path.write_text(certificate.pem)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_path, key_path


class Browser:
    """One TLS connection per request, always with the same client certificate (or none), and a cookie jar."""

    def __init__(self, portal: Portal, client_files: tuple[Path, Path] | None = None,
                 cookies: dict[str, str] | None = None, language: str = "ja") -> None:
        self.portal = portal
        self.context = ssl.create_default_context(cafile=str(portal.ca_chain))
        if client_files is not None:
            self.context.load_cert_chain(*map(str, client_files))
        self.cookies: dict[str, str] = dict(cookies or {})
        self.cookies.setdefault(settings.LANGUAGE_COOKIE_NAME, language)
        self.origin = f"https://{portal.host}:{portal.port}"

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        self.portal.ensure_serving()
        connection = http.client.HTTPSConnection(self.portal.host, self.portal.port, context=self.context, timeout=15)
        sent = {"Origin": self.origin, "Referer": self.origin + "/", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, form: dict[str, str], **kwargs) -> Response:
        """POST as a browser submits the page's form: with the CSRF token from the page."""
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no CSRF token on {path} ({page.status}):\n{page.text[:500]}"
        return self.request("POST", path, form={"csrfmiddlewaretoken": token.group(1), **form}, **kwargs)

    def log_in(self, login_id: str, password: str) -> Response:
        return self.post_form("/", {"login_id": login_id, "password": password})


def start_django(tmp_path, code: str = SETUP, **variables: str) -> subprocess.CompletedProcess:
    """Set Django up in a fresh interpreter with only these variables of ours in its environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CERTPORTAL_", "DATABASE_URL", "CELERY_", "ANYMAIL_", "DJANGO_"))
    }
    env.update(DJANGO_SETTINGS_MODULE="certportal.settings", CERTPORTAL_VAR_DIR=str(tmp_path), **variables)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
