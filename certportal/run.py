"""`make run`: the portal over HTTPS (gunicorn's own TLS) and its Celery worker with beat.

One machine, no nginx: gunicorn asks for a client certificate optionally at the TLS
layer, with the portal's CA as the only trusted issuer, and a server certificate
from a separate local TLS CA.
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


def serve_on(port: int) -> None:
    """The CRL, OCSP and CA-issuers addresses written into certificates follow the port served on.

    Settings derive them from the public address, which only debug lets default; the worker and
    gunicorn inherit it. Call before django.setup().
    """
    os.environ.setdefault("CERTPORTAL_PUBLIC_BASE_URL", f"https://127.0.0.1:{port}")


def server_hostnames(host: str) -> list[str]:
    """The names `make run`'s server certificate is for: the address it serves on, and the loopback."""
    return list(dict.fromkeys([host, "127.0.0.1"]))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8443)
    # An address, not "localhost": a single-label DNS name is not valid in a certificate (RFC 5280 via
    # RFC 1034's preferred syntax; pkilint refuses it).
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    serve_on(args.port)
    django.setup()
    files = prepare_tls(server_hostnames(args.host))
    url = f"https://{args.host}:{args.port}/"
    print(f"\ncertportal is at {url}")
    print(f"Trust its local TLS CA to avoid the browser warning: import {files.server_ca} as a trusted authority")
    print("  (Linux/Chromium: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n certportal -i "
          f"{files.server_ca})\n")
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
