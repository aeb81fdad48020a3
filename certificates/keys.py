"""Where the CA's private keys live, and the one place where they sign.

Keys are named ("root", "issuing", and any later one such as "ocsp-responder"). A backend
creates a named key and returns a *reference* the database keeps (an encrypted PKCS#8 PEM,
or a `pkcs11:` URI for a key that never leaves its token); `sign()` turns bytes into an
ECDSA-Sig-Value over their SHA-384 digest. `signed_certificate()`, `signed_crl()` and
`signed_ocsp_response()` all end in `sign()`: cryptography builds the structure with a
throw-away key, the backend signs its TBS bytes, and the real signature is put in (certificates
and CRLs by joining their DER parts, OCSP answers through asn1crypto). The result is verified
against the CA's public key before it is returned, unless the backend holds that very key in
this process (then every signature it makes verifies, and the check was made once, on loading).

Backends (CERTPORTAL_KEY_BACKEND): `encrypted` (the default) and `pkcs11` (certificates/pkcs11.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

from asn1crypto import algos, pem
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509 import ocsp
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

ROOT = "root"
ISSUING = "issuing"
OCSP_RESPONDER = "ocsp-responder"  # the delegated OCSP responder (certificates/ocsp.py)

# OWASP's Password Storage Cheat Sheet (2023 and later): PBKDF2-HMAC-SHA256 at 600,000 iterations.
KDF_ITERATIONS = 600_000
CURVE = ec.SECP384R1
SIGNATURE_HASH = hashes.SHA384


class KeyUnavailable(ImproperlyConfigured):
    """This process was not given the secret of that key (the root's, in every web, worker or beat process)."""


class KeyBackend(ABC):
    """The CA keys of one kind of storage; every CA signature is made by `sign()`."""

    @abstractmethod
    def generate(self, name: str) -> str:
        """Create a new P-384 key called `name`; return the reference to keep in the database."""

    @abstractmethod
    def public_key(self, name: str, reference: str) -> ec.EllipticCurvePublicKey: ...

    @abstractmethod
    def sign(self, name: str, reference: str, data: bytes) -> bytes:
        """A DER ECDSA-Sig-Value over SHA-384(data), made with the key `reference` names."""

    def holds_key_for(self, name: str, reference: str, public_key: ec.EllipticCurvePublicKey) -> bool:
        """Whether the key `reference` names is in this process and is `public_key`'s: its signatures
        then need no verifying. False by default: a token's key is verified on every signature."""
        return False


# --- encrypted at rest -----------------------------------------------------------------


def passphrase_for(name: str) -> str:
    """The root key has its own secret; every online key (issuing, OCSP responder) shares the issuing one."""
    if name == ROOT:
        if not settings.ROOT_CA_PASSPHRASE:
            raise KeyUnavailable(
                "The root CA key is offline: this command needs CERTPORTAL_ROOT_CA_PASSPHRASE, "
                "which only the root key ceremony's operator gives (see deploy/README.md)."
            )
        return settings.ROOT_CA_PASSPHRASE
    if not settings.ISSUING_CA_PASSPHRASE:
        raise KeyUnavailable("CERTPORTAL_ISSUING_CA_PASSPHRASE is not set.")
    return settings.ISSUING_CA_PASSPHRASE


def passphrase_setting(name: str) -> str:
    return "CERTPORTAL_ROOT_CA_PASSPHRASE" if name == ROOT else "CERTPORTAL_ISSUING_CA_PASSPHRASE"


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, passphrase: str, *, iterations: int = KDF_ITERATIONS) -> str:
    """PKCS#8 EncryptedPrivateKeyInfo: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC.

    cryptography's BestAvailableEncryption fixes PBKDF2 at 2,048 rounds and offers no
    builder for PKCS#8, so the standard structure is written here with asn1crypto;
    cryptography (and `openssl pkcs8`) read it back as any other encrypted PKCS#8 key.
    """
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = os.urandom(16), os.urandom(16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase.encode())
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo({
        "encryption_algorithm": {
            "algorithm": "pbes2",
            "parameters": {
                "key_derivation_func": {
                    "algorithm": "pbkdf2",
                    "parameters": {
                        "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                        "iteration_count": iterations,
                        "prf": {"algorithm": "sha256"},
                    },
                },
                "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
            },
        },
        "encrypted_data": ciphertext,
    })
    return pem.armor("ENCRYPTED PRIVATE KEY", info.dump()).decode()


def kdf_iterations(encrypted_pem: str) -> int:
    """The PBKDF2 iteration count a stored key was wrapped with (what `rewrap_ca_keys` raises)."""
    _type, _headers, der = pem.unarmor(encrypted_pem.encode())
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    return algorithm.kdf_iterations


@functools.lru_cache(maxsize=8)
def decrypt_private_key(encrypted_pem: str, passphrase: str, setting: str) -> ec.EllipticCurvePrivateKey:
    # Once per process and key: the KDF costs a third of a second on purpose.
    try:
        return serialization.load_pem_private_key(encrypted_pem.encode(), passphrase.encode())
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{setting} does not decrypt the CA's private key; it must be the passphrase the key was wrapped with."
        ) from None


class EncryptedBackend(KeyBackend):
    """Keys in the database as encrypted PKCS#8; decrypted in this process's memory only."""

    def generate(self, name: str) -> str:
        return encrypt_private_key(ec.generate_private_key(CURVE()), passphrase_for(name))

    def private_key(self, name: str, reference: str) -> ec.EllipticCurvePrivateKey:
        if not reference.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----"):
            raise ImproperlyConfigured(
                f"The {name} CA key is not an encrypted key (it is {reference[:40]!r}); "
                "CERTPORTAL_KEY_BACKEND must name the backend that created it."
            )
        return decrypt_private_key(reference, passphrase_for(name), passphrase_setting(name))

    def public_key(self, name: str, reference: str) -> ec.EllipticCurvePublicKey:
        return self.private_key(name, reference).public_key()

    def sign(self, name: str, reference: str, data: bytes) -> bytes:
        return self.private_key(name, reference).sign(data, ec.ECDSA(SIGNATURE_HASH()))

    def holds_key_for(self, name: str, reference: str, public_key: ec.EllipticCurvePublicKey) -> bool:
        return _matches(self.private_key(name, reference), public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


@functools.lru_cache(maxsize=8)
def _matches(private_key: ec.EllipticCurvePrivateKey, public_key_der: bytes) -> bool:
    # Once per key and CA certificate: the private key held is that certificate's, so each of its
    # ECDSA signatures verifies with it (a changed key or certificate is another cache entry).
    return private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public_key_der


BACKENDS = {
    "encrypted": "certificates.keys.EncryptedBackend",
    "pkcs11": "certificates.pkcs11.Pkcs11Backend",
}


@functools.cache
def _backend(name: str) -> KeyBackend:
    return import_string(BACKENDS[name])()


def backend() -> KeyBackend:
    """The backend CERTPORTAL_KEY_BACKEND names (one instance per process)."""
    return _backend(settings.KEY_BACKEND)


# --- signing: build with cryptography, sign with the backend ----------------------------


@functools.cache
def _placeholder_key() -> ec.EllipticCurvePrivateKey:
    """Signs what cryptography builds; that signature is always replaced before anything leaves.

    P-256, the quickest curve: ecdsa-with-SHA384, the algorithm the TBS names, does not say the
    curve, so the TBS bytes are those a P-384 placeholder would give.
    """
    return ec.generate_private_key(ec.SECP256R1())


def _signature_algorithm() -> dict:
    return {"algorithm": "sha384_ecdsa"}


# AlgorithmIdentifier ecdsa-with-SHA384 (no parameters, RFC 5758), DER, as asn1crypto writes it.
_SIGNATURE_ALGORITHM_DER = algos.SignedDigestAlgorithm(_signature_algorithm()).dump()


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _tlv(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(contents)) + contents


def _bit_string(signature: bytes) -> bytes:
    return _tlv(0x03, b"\x00" + signature)


def _signed_der(tbs: bytes, signature: bytes) -> bytes:
    """Certificate and CertificateList alike: SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }.

    Joined as bytes rather than through asn1crypto, which re-encodes the whole structure
    (about half of an issuance's CPU); cryptography parses the result right after.
    """
    return _tlv(0x30, tbs + _SIGNATURE_ALGORITHM_DER + _bit_string(signature))


def signed_certificate(
    builder: x509.CertificateBuilder, *, key_name: str, reference: str, issuer_public_key: ec.EllipticCurvePublicKey
) -> x509.Certificate:
    """The certificate `builder` describes, signed by the named key through the backend."""
    draft = builder.sign(_placeholder_key(), SIGNATURE_HASH())
    tbs = draft.tbs_certificate_bytes
    signature = backend().sign(key_name, reference, tbs)
    certificate = x509.load_der_x509_certificate(_signed_der(tbs, signature))
    _verify(issuer_public_key, certificate.signature, certificate.tbs_certificate_bytes, what="certificate",
            key_name=key_name, reference=reference)
    return certificate


def signed_crl(
    builder: x509.CertificateRevocationListBuilder, *, key_name: str, reference: str,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> x509.CertificateRevocationList:
    """The CRL `builder` describes, signed by the named key through the backend."""
    draft = builder.sign(_placeholder_key(), SIGNATURE_HASH())
    tbs = draft.tbs_certlist_bytes
    signature = backend().sign(key_name, reference, tbs)
    revocation_list = x509.load_der_x509_crl(_signed_der(tbs, signature))
    _verify(issuer_public_key, revocation_list.signature, revocation_list.tbs_certlist_bytes, what="CRL",
            key_name=key_name, reference=reference)
    return revocation_list


def _verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, *, what: str, key_name: str,
            reference: str) -> None:
    # A token with the wrong key, or a key that does not match the CA certificate, stops here.
    if backend().holds_key_for(key_name, reference, public_key):
        return
    try:
        public_key.verify(signature, data, ec.ECDSA(SIGNATURE_HASH()))
    except InvalidSignature:
        raise ImproperlyConfigured(
            f"The {what} signed by the key backend does not verify with the CA's public key: "
            "the configured key is not the CA's."
        ) from None


def signed_ocsp_response(
    builder: ocsp.OCSPResponseBuilder, *, key_name: str, reference: str, responder: x509.Certificate,
    include_responder_certificate: bool = True,
) -> ocsp.OCSPResponse:
    """The OCSP response `builder` describes (without a responder_id), signed by the named key.

    cryptography's builder insists on holding the responder's private key, so the draft names
    a throw-away responder; its responderID (byKey, a SHA-1 of the same length) is replaced in
    the TBS bytes by `responder`'s before they are signed, and the response is joined as DER.
    """
    placeholder = _placeholder_certificate()
    draft = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, placeholder).sign(
        _placeholder_key(), SIGNATURE_HASH()
    )
    tbs = _with_responder_id(draft.tbs_response_bytes, _key_sha1(placeholder), _key_sha1(responder))
    signature = backend().sign(key_name, reference, tbs)
    basic = tbs + _SIGNATURE_ALGORITHM_DER + _bit_string(signature)
    if include_responder_certificate:
        basic += _tlv(0xA0, _tlv(0x30, responder.public_bytes(serialization.Encoding.DER)))
    response_bytes = _tlv(0x30, _ID_PKIX_OCSP_BASIC + _tlv(0x04, _tlv(0x30, basic)))
    response = ocsp.load_der_ocsp_response(_tlv(0x30, _OCSP_SUCCESSFUL + _tlv(0xA0, response_bytes)))
    _verify(responder.public_key(), response.signature, response.tbs_response_bytes, what="OCSP response",
            key_name=key_name, reference=reference)
    return response


_ID_PKIX_OCSP_BASIC = bytes.fromhex("06092b0601050507300101")  # OID 1.3.6.1.5.5.7.48.1.1
_OCSP_SUCCESSFUL = bytes.fromhex("0a0100")  # OCSPResponseStatus successful (0)


def _key_sha1(certificate: x509.Certificate) -> bytes:
    """ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING's contents (RFC 6960 4.2.1)."""
    return hashlib.sha1(certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint), usedforsecurity=False).digest()


def _with_responder_id(tbs: bytes, placeholder_hash: bytes, real_hash: bytes) -> bytes:
    # ResponseData starts (version v1 left out) with responderID [2] EXPLICIT OCTET STRING (20 octets).
    header = 2 if tbs[1] < 0x80 else 2 + (tbs[1] & 0x7F)
    responder_id = b"\xa2\x16\x04\x14" + placeholder_hash
    if tbs[header:header + len(responder_id)] != responder_id:
        raise ValueError("unexpected OCSP ResponseData layout")
    return tbs[:header] + b"\xa2\x16\x04\x14" + real_hash + tbs[header + len(responder_id):]


@functools.cache
def _placeholder_certificate() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "placeholder, always replaced")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_placeholder_key().public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(_placeholder_key(), SIGNATURE_HASH())
    )
