"""`make run`: the portal over HTTPS (gunicorn's own TLS) and its Celery worker with beat.

One machine, no nginx: gunicorn asks for a client certificate optionally at the TLS
layer, with the portal's CA as the only trusted issuer, and a server certificate
issued by that same CA.
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

import django
from cryptography.exceptions import InvalidSignature

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certportal.settings")


def prepare_tls(hostnames: list[str], directory: Path | None = None) -> tuple[Path, Path, Path]:
    """Write the CA chain and a server certificate (key unencrypted, mode 0600); var/tls by default.

    The server certificate is kept across runs unless the CA changed (a new database) or it
    is about to expire; then a new one is issued.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.conf import settings
    from django.utils import timezone

    from certificates import ca

    tls = directory or Path(settings.VAR_DIR) / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    chain, cert_path, key_path = tls / "ca-chain.pem", tls / "server.pem", tls / "server.key"
    chain.write_text(ca.chain_pem())
    issuer = ca.unlock()
    now = timezone.now()
    if cert_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if existing.issuer == issuer.certificate.subject and existing.not_valid_after_utc > now + timedelta(days=7):
            try:
                existing.verify_directly_issued_by(issuer.certificate)
                return chain, cert_path, key_path
            except (ValueError, TypeError, InvalidSignature):
                pass  # same name, another CA: issue a new one
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.sign_server_certificate(ca=issuer, public_key=key.public_key(), hostnames=hostnames, now=now)
    key_path.unlink(missing_ok=True)
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + issuer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    return chain, cert_path, key_path


def gunicorn_command(
    *, bind: str, chain: Path | None = None, cert: Path | None = None, key: Path | None = None, workers: int = 2,
    access_log: bool = True,
) -> list[str]:
    """gunicorn serving the portal: its own TLS when given a certificate, plain HTTP behind nginx otherwise.

    `bind` is host:port, or fd://N for a socket the caller already listens on.
    """
    command = [
        sys.executable, "-m", "gunicorn", "certportal.wsgi:application",
        "--bind", bind, "--workers", str(workers),
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


def served_address(host: str, port: int, environ: dict[str, str]) -> dict[str, str]:
    """The address this run serves on, as CERTPORTAL_PUBLIC_BASE_URL for the web and worker processes
    (links in e-mails), unless the environment already states one."""
    if environ.get("CERTPORTAL_PUBLIC_BASE_URL"):
        return {}
    return {"CERTPORTAL_PUBLIC_BASE_URL": f"https://{host}:{port}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--host", default="localhost")
    args = parser.parse_args()
    os.environ.update(served_address(args.host, args.port, os.environ))  # inherited by gunicorn and celery
    django.setup()
    chain, cert, key = prepare_tls([args.host, "127.0.0.1"])
    url = f"https://{args.host}:{args.port}/"
    print(f"\ncertportal is at {url} (links in e-mails: {os.environ['CERTPORTAL_PUBLIC_BASE_URL']}/)")
    print("Ctrl-C stops the web server and the worker (with beat); the database and var/ stay.")
    print(f"Trust its CA to avoid the browser warning: import {chain} as a trusted authority")
    print("  (Linux/Chromium: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n certportal -i " + str(chain) + ")\n")
    processes = [
        subprocess.Popen(gunicorn_command(bind=f"{args.host}:{args.port}", chain=chain, cert=cert, key=key)),
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
