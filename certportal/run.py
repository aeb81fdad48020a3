"""`make run`: the portal over HTTPS (gunicorn's own TLS) and its Celery worker with beat.

One machine, no nginx: gunicorn asks for a client certificate optionally at the TLS
layer, with the portal's CA as the only trusted issuer, and a server certificate
from a separate local TLS CA.

Everything it writes under var/ holds secrets or leads to them (the SQLite database with
the encrypted CA keys and password hashes, the server's TLS key, e-mails with one-time
codes, the broker's messages), so it runs with umask 077: files 0600, folders 0700, also
in the gunicorn and Celery processes it starts; what an earlier run left is tightened.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import django
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certportal.settings")


class TLSFiles(NamedTuple):
    client_ca: Path  # the portal's CA chain: the only issuers of client certificates gunicorn accepts
    certificate: Path  # the server certificate, then its CA
    key: Path  # the server key, unencrypted, mode 0600
    server_ca: Path  # what a browser trusts to reach `make run`: the local TLS CA


def _write_private(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization

    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))


def prepare_tls(hostnames: list[str], directory: Path | None = None) -> TLSFiles:
    """Write the client CA chain, a local TLS CA and a server certificate from it; var/tls by default.

    The server certificate never comes from the client-issuing CA (whose EKU allows only client
    authentication and OCSP signing): a self-signed local TLS CA, created once and kept with its
    key (0600) beside it, issues it. It is kept across runs unless it is about to expire.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.conf import settings
    from django.utils import timezone

    from certificates import ca

    tls = directory or Path(settings.VAR_DIR) / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(tls / "ca-chain.pem", tls / "server.pem", tls / "server.key", tls / "server-ca.pem")
    files.client_ca.write_text(ca.chain_pem())
    now = timezone.now()
    tls_ca_key_path = tls / "server-ca.key"
    tls_ca = None
    if files.server_ca.exists() and tls_ca_key_path.exists():
        certificate = x509.load_pem_x509_certificate(files.server_ca.read_bytes())
        if certificate.not_valid_after_utc > now + timedelta(days=30):
            key = serialization.load_pem_private_key(tls_ca_key_path.read_bytes(), None)
            tls_ca = ca.Signer(certificate=certificate, private_key=key)
    if tls_ca is None:
        certificate, key = ca.create_tls_ca(now=now)
        _write_private(tls_ca_key_path, key)
        files.server_ca.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        tls_ca = ca.Signer(certificate=certificate, private_key=key)
    if files.certificate.exists() and files.key.exists():
        existing = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        if existing.issuer == tls_ca.certificate.subject and existing.not_valid_after_utc > now + timedelta(days=7):
            try:
                existing.verify_directly_issued_by(tls_ca.certificate)
                return files
            except (ValueError, TypeError, InvalidSignature):
                pass  # same name, another CA: issue a new one
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.sign_server_certificate(ca=tls_ca, public_key=key.public_key(), hostnames=hostnames, now=now)
    _write_private(files.key, key)
    files.certificate.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + tls_ca.certificate.public_bytes(serialization.Encoding.PEM)
    )
    return files


def server_hostnames(host: str) -> list[str]:
    """The names `make run`'s server certificate is for: the address it serves on, and the loopback."""
    return list(dict.fromkeys([host, "127.0.0.1"]))


# seed_demo's operator, and the password of its certificate file (a demo, on a developer's machine).
DEMO_OPERATOR = "bank-operator"
DEVELOPMENT_ROOT_CA_PASSPHRASE = "certportal-development-root-passphrase"  # noqa: S105 (make run only)
DEMO_OPERATOR_FILE_PASSWORD = "Operator-file-demo-2026"  # noqa: S105 (printed, as seed_demo's passwords are)


def prepare_operator_certificate(directory: Path | None = None, *, login_id: str = DEMO_OPERATOR) -> Path | None:
    """The demo operator's certificate as a PKCS#12 file (mode 0600) to import; var/tls by default.

    Kept across runs while the certificate in it is the operator's and valid for another week;
    otherwise a new one is issued, as `manage.py issue_operator_certificate --pkcs12` would.
    None when there is no such operator (seed_demo not run).
    """
    from cryptography.hazmat.primitives.serialization import pkcs12
    from django.conf import settings
    from django.utils import timezone

    from accounts.models import User
    from certificates.csr import CertificateRefused
    from certificates.models import Certificate, certificate_fingerprint
    from certificates.operator_access import issue_operator_pkcs12, write_private_file

    operator = User.objects.filter(login_id=login_id, contract__isnull=True, is_staff=True).first()
    if operator is None:
        return None
    path = (directory or Path(settings.VAR_DIR) / "tls") / f"{login_id}.p12"
    path.parent.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    if path.exists():
        try:
            _key, existing, _chain = pkcs12.load_key_and_certificates(
                path.read_bytes(), DEMO_OPERATOR_FILE_PASSWORD.encode()
            )
        except ValueError:
            existing = None
        if existing is not None and Certificate.objects.valid(now).filter(
            owner=operator,
            fingerprint_sha256=certificate_fingerprint(existing.public_bytes(serialization.Encoding.DER)),
            not_after__gt=now + timedelta(days=7),
        ).exists():
            return path
    try:
        bundle = issue_operator_pkcs12(operator=operator, password=DEMO_OPERATOR_FILE_PASSWORD,
                                       issued_by="make run (certportal.run)", now=now)
    except CertificateRefused as refusal:
        print(f"No operator certificate file this time: {refusal.message}")
        return None
    write_private_file(path, bundle.pkcs12)
    return path


def gunicorn_command(
    *, bind: str | list[str], chain: Path | None = None, cert: Path | None = None, key: Path | None = None,
    workers: int = 2, access_log: bool = True,
) -> list[str]:
    """gunicorn serving the portal: its own TLS when given a certificate, plain HTTP behind nginx otherwise.

    `bind` is host:port, unix:PATH, or fd://N for a socket the caller already listens on (or a list of them).
    """
    binds = [bind] if isinstance(bind, str) else bind
    command = [
        sys.executable, "-m", "gunicorn", "certportal.wsgi:application",
        *(argument for address in binds for argument in ("--bind", address)), "--workers", str(workers),
        "--no-control-socket",  # gunicorn 27 would otherwise share ~/.gunicorn/gunicorn.ctl between instances
    ]
    if cert is not None:
        command += [
            "--certfile", str(cert), "--keyfile", str(key),
            "--ca-certs", str(chain), "--cert-reqs", "1",  # ssl.CERT_OPTIONAL: login screen works without one
            # An expired certificate still reaches the login screen, which says what to do.
            "--config", "python:certportal.gunicorn_tls",
        ]
    if access_log:
        command += ["--access-logfile", "-"]
    return command


PRIVATE_UMASK = 0o077


def keep_private(var_dir: Path) -> None:
    """Folders 0700 and files 0600 under var/, for files written before this umask was in force."""
    for folder, _folders, files in os.walk(var_dir):
        os.chmod(folder, 0o700)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o600)


def prepare(hostnames: list[str]) -> TLSFiles:
    """The database migrated, the CA and the demo contract created, static files collected, TLS files written."""
    os.umask(PRIVATE_UMASK)  # before Django creates var/ and the database
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    keep_private(Path(settings.VAR_DIR))
    Path(settings.EMAIL_FILE_PATH).mkdir(mode=0o700, parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    from django.test.utils import override_settings

    # The key ceremony, in development: the root's secret is given to init_ca only, never to the server.
    root_passphrase = os.environ.get("CERTPORTAL_ROOT_CA_PASSPHRASE") or DEVELOPMENT_ROOT_CA_PASSPHRASE
    with override_settings(ROOT_CA_PASSPHRASE=root_passphrase):
        call_command("init_ca")
    call_command("seed_demo")
    call_command("collectstatic", interactive=False, verbosity=0)
    return prepare_tls(hostnames)


def served_address(host: str, port: int, environ: dict[str, str]) -> dict[str, str]:
    """The address this run serves on, as CERTPORTAL_PUBLIC_BASE_URL for the web and worker processes
    (links in e-mails), unless the environment already states one."""
    if environ.get("CERTPORTAL_PUBLIC_BASE_URL"):
        return {}
    return {"CERTPORTAL_PUBLIC_BASE_URL": f"https://{host}:{port}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8443)
    # An address, not "localhost": a single-label DNS name is not valid in a certificate (RFC 5280 via
    # RFC 1034's preferred syntax; pkilint refuses it).
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--prepare-only", action="store_true", help="set up var/ and stop, without serving")
    args = parser.parse_args()
    # E-mail links and the CRL, OCSP and CA-issuers addresses follow where this run serves.
    os.environ.update(served_address(args.host, args.port, os.environ))  # inherited by gunicorn and celery
    files = prepare(server_hostnames(args.host))
    if args.prepare_only:
        return
    url = f"https://{args.host}:{args.port}/"
    print(f"\ncertportal is at {url} (links in e-mails: {os.environ['CERTPORTAL_PUBLIC_BASE_URL']}/)")
    print("Ctrl-C stops the web server and the worker (with beat); the database and var/ stay.")
    print(f"Trust its local TLS CA to avoid the browser warning: import {files.server_ca} as a trusted authority")
    print("  (Linux/Chromium: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n certportal -i "
          f"{files.server_ca})")
    operator_file = prepare_operator_certificate()
    if operator_file is not None:
        print(f"Operators' site {url}operator/: import {operator_file} into the browser (file password "
              f"{DEMO_OPERATOR_FILE_PASSWORD};\n  Linux/Chromium: pk12util -d sql:$HOME/.pki/nssdb -i "
              f"{operator_file}), restart it, choose that certificate and log in as {DEMO_OPERATOR} with its "
              "password above.")
    print()
    processes = [
        subprocess.Popen(gunicorn_command(bind=f"{args.host}:{args.port}", chain=files.client_ca,
                                          cert=files.certificate, key=files.key)),
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "certportal", "worker", "--beat",
                          "--loglevel", "INFO", "--concurrency", "1"]),
    ]

    def stop(*_args) -> None:
        for process in processes:
            process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(process.poll() is None for process in processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[0].wait(timeout=1)
    finally:
        stop()
        for process in processes:
            process.wait()


if __name__ == "__main__":
    main()
