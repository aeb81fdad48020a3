"""Strict checks on a certificate signing request before anything is issued from it.

The CSR contributes its public key and nothing else; these checks make sure that key
is one the bank accepts and that the requester holds its private half.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from . import weak_keys

MAX_CSR_BYTES = 16 * 1024
RSA_MIN_BITS, RSA_MAX_BITS = 2048, 4096
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
BROKEN_SIGNATURE_HASHES = {"sha1": "SHA-1", "md5": "MD5"}


class CertificateRefused(Exception):
    """Nothing was issued; `message` says why in the active language."""

    def __init__(self, code: str, message) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


class CsrRejected(CertificateRefused):
    pass


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse and check a CSR in PEM or DER; raise CsrRejected with a clear reason."""
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError:  # a lone surrogate, say: not text a CSR could be written in
            raise CsrRejected("not_a_csr", _("This is not a certificate signing request (CSR).")) from None
    if len(data) > MAX_CSR_BYTES:
        raise CsrRejected("too_large", _("The request is larger than 16 KiB and was not read."))
    try:
        is_pem = data.lstrip().startswith(b"-----BEGIN")
        csr = x509.load_pem_x509_csr(data) if is_pem else x509.load_der_x509_csr(data)
    except ValueError:
        raise CsrRejected("not_a_csr", _("This is not a certificate signing request (CSR).")) from None
    refuse_a_broken_hash(csr)
    try:
        signature_ok = csr.is_signature_valid
    except Exception:  # an unsupported signature algorithm cannot prove possession either
        signature_ok = False
    if not signature_ok:
        raise CsrRejected(
            "bad_signature",
            _("The request's signature does not match its public key, so it was not made with that key."),
        )
    check_public_key(csr.public_key())
    return csr


def refuse_a_broken_hash(csr: x509.CertificateSigningRequest) -> None:
    """SHA-1 and MD5 signatures are refused for what they are (their signature cannot be checked either)."""
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return  # not a hash this check knows; the signature check refuses it
    if algorithm is not None and algorithm.name in BROKEN_SIGNATURE_HASHES:
        raise CsrRejected(
            "broken_signature_hash",
            format_lazy(_("The request is signed with {algorithm}, which is no longer accepted. Create it again with "
                          "SHA-256 or a stronger hash."), algorithm=BROKEN_SIGNATURE_HASHES[algorithm.name]),
        )


def check_public_key(key) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise CsrRejected(
                "rsa_size",
                _("RSA keys must be 2048 to 4096 bits long; this one is %(bits)s bits.") % {"bits": key.key_size},
            )
        if key.public_numbers().e != 65537:
            raise CsrRejected("rsa_exponent", _("RSA keys must use the public exponent 65537."))
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CsrRejected(
                "ec_curve",
                _("Elliptic-curve keys must be on P-256 or P-384, not %(curve)s.") % {"curve": key.curve.name},
            )
    else:
        raise CsrRejected("key_type", _("Only RSA and elliptic-curve (P-256, P-384) keys are accepted."))
    weakness = weak_keys.weakness(key)
    if weakness is not None:
        raise CsrRejected(f"weak_key_{weakness}", WEAKNESS_MESSAGES[weakness])


# Boulder (Let's Encrypt) refuses the same keys; the customer can do nothing but make a new key.
_NEW_KEY = _("Create a new key on an up-to-date PC and try again.")
WEAKNESS_MESSAGES = {
    weak_keys.FERMAT: format_lazy("{} {}", _(
        "This key is unsafe: its two primes are so close that its private key can be computed (Fermat)."
    ), _NEW_KEY),
    weak_keys.SMALL_FACTORS: format_lazy("{} {}", _(
        "This key is unsafe: its modulus has a small prime factor, so its private key can be computed."
    ), _NEW_KEY),
    weak_keys.ROCA: format_lazy("{} {}", _(
        "This key is unsafe: it was made by a chip with the ROCA flaw (CVE-2017-15361)."
    ), _NEW_KEY),
    weak_keys.BLOCKLISTED: format_lazy("{} {}", _(
        "This key is unsafe: it is on the list of known compromised keys, such as those made by Debian's "
        "broken OpenSSL (CVE-2008-0166)."
    ), _NEW_KEY),
}
