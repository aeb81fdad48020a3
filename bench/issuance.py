"""Issuance figure of `make bench`: the CPU one certificate issuance costs, against its raw floor.

In-process, on a PostgreSQL database of this run's own (dropped at the end): the portal's
service (certificates.services.issue_certificate, as 電子証明書取得 calls it) issues from a
fresh CSR for a fresh ID, against the same work hand-written:

- the CSR parsed and checked with cryptography (size, SHA-1/MD5 refusal, signature, key type
  and size), the same certificate built and signed with the same CA key;
- the very SQL statements the service sent (captured with an execute wrapper), replayed with
  this issuance's values through psycopg's own cursor in one transaction.

CPU time of this process (time.process_time) per issuance, the median over rounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time

from .databases import create_database, drop_database, postgres_server_url

ROUNDS, CALLS, WARM_UP = 7, 60, 10
TARGET = 2.5


def cpu_ms(call, first: int) -> float:
    """The median over ROUNDS of the mean CPU milliseconds per call; call(i) for i from `first` on."""
    for i in range(first, first + WARM_UP):
        call(i)
    rounds, i = [], first + WARM_UP
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            call(i)
            i += 1
        rounds.append((time.process_time() - started) / CALLS * 1000)
    return statistics.median(rounds)


def _replacing(pairs: list[tuple[object, object]]):
    """A function that swaps, in one statement's parameters, the first issuance's values for this one's."""
    from psycopg.types.json import Jsonb

    def swap(value):
        if isinstance(value, Jsonb) and isinstance(value.obj, dict):
            return Jsonb({key: swap(item) for key, item in value.obj.items()})
        for old, new in pairs:
            if type(value) is type(old) and value == old:
                return new
        return value

    return lambda params: None if params is None else [swap(value) for value in params]


def measure() -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Contract, User
    from certificates import ca, keys
    from certificates.models import Certificate
    from certificates.services import issue_certificate, validity_end
    from tests.support.pki import make_csr

    per_side = WARM_UP + ROUNDS * CALLS
    contract = Contract.objects.create(number="9400001", name="Bench Issuance K.K.")
    # Primary keys of their own range, which no other value in the statements can equal (see _replacing).
    users = User.objects.bulk_create([
        User(pk=100_000 + i, login_id=f"bench-issue-{i:05d}", email=f"i{i}@bench.example", contract=contract,
             role=User.Role.USER)
        for i in range(1 + 2 * per_side)
    ])
    csrs = [make_csr()[0] for _ in users]

    def service(i: int) -> Certificate:
        return issue_certificate(user=users[i], csr=csrs[i], via=Certificate.Channel.OBTAIN).certificate

    # The statements of one issuance, and the values that issuance gave them.
    sent: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        first = service(0)
    first_now = first.not_before
    first_values = [users[0].pk, first.serial_number, first.subject, first.public_key_sha256,
                    first.fingerprint_sha256, first.not_before, first.not_after, bytes(first.der)]

    # The floor: the CA as a process holds it (certificate parsed, key unlocked), then everything by hand.
    issuer = ca.unlock()
    ca_certificate = issuer.certificate
    ca_key = keys.EncryptedBackend().private_key(keys.ISSUING, issuer.record.encrypted_key_pem)
    authority_key = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(authority_key)
    crl = x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(settings.CRL_URL)], relative_name=None, reasons=None,
        crl_issuer=None)])

    def floor(i: int) -> None:
        now = timezone.now().replace(microsecond=0)
        data = csrs[i]
        if len(data) > 16 * 1024:
            raise ValueError("too large")
        csr = x509.load_pem_x509_csr(data)
        if csr.signature_hash_algorithm.name in ("sha1", "md5") or not csr.is_signature_valid:
            raise ValueError("bad signature")
        key = csr.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if not 2048 <= key.key_size <= 4096 or key.public_numbers().e != 65537:
                raise ValueError("bad RSA key")
        elif not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, (ec.SECP256R1,
                                                                                            ec.SECP384R1)):
            raise ValueError("bad key")
        key_hash = hashlib.sha256(key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
        user = users[i]
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.CA_ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, contract.number),
            x509.NameAttribute(NameOID.COMMON_NAME, user.login_id),
        ])
        not_after = min(validity_end(now), ca_certificate.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(ca_certificate.subject).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - ca.CLOCK_SKEW_ALLOWANCE).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(authority_key_id, critical=False)
            .add_extension(crl, critical=False)
            .sign(ca_key, hashes.SHA384())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        swap = _replacing(list(zip(first_values, [
            user.pk, f"{cert.serial_number:X}", cert.subject.rfc4514_string(), key_hash,
            hashlib.sha256(der).hexdigest(), now, not_after, der], strict=True)) + [(first_now, now)])
        raw = connection.connection
        with raw.transaction(), raw.cursor() as cursor:
            for sql, params in sent:
                cursor.execute(sql, swap(params))
                if cursor.description:
                    cursor.fetchall()

    connection.ensure_connection()
    issued = cpu_ms(service, 1)
    floor_ms = cpu_ms(floor, 1 + per_side)
    made = Certificate.objects.filter(owner__contract=contract).count()
    if made != 2 * per_side + 1:
        raise RuntimeError(f"expected {2 * per_side + 1} certificates, found {made}")
    return {"service": issued, "floor": floor_ms, "statements": len(sent),
            "sql": [sql.split(" WHERE ")[0][:90] for sql, _ in sent]}


def main() -> list[dict]:
    server = postgres_server_url()
    if server is None:
        print("issuance bench skipped: no PostgreSQL")
        return [{"figure": "issuance, CPU per certificate", "measured": "skipped: no PostgreSQL", "ratio": None,
                 "target": "", "ok": None}]
    from . import stack as production

    workdir = tempfile.mkdtemp(prefix="certportal-bench-issuance-")
    database_url = create_database(server, "issuance")
    os.environ.update(production.production_env(
        {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": database_url}, workdir))
    import django

    django.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        production.init_ca()
        got = measure()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(server, database_url)
    print("  " + json.dumps(got, ensure_ascii=False))
    ratio = got["service"] / got["floor"]
    return [{
        "figure": f"issuance from a CSR vs its raw floor (in-process CPU per certificate; the same "
                  f"{got['statements']} statements, CSR checks and signature, hand-written)",
        "measured": f"{got['service']:.2f} ms vs {got['floor']:.2f} ms",
        "ratio": ratio, "target": f"<= {TARGET:.1f}x", "ok": ratio <= TARGET,
    }]


if __name__ == "__main__":
    for row in main():
        print(row)
