"""The PKCS#11 key backend: the CA keys are made and used inside a token (an HSM, or SoftHSM2).

The keys are P-384, CKA_TOKEN (kept), CKA_SENSITIVE and not CKA_EXTRACTABLE: no one, the
portal included, can read them out. The database keeps only a `pkcs11:` URI (RFC 7512)
naming the object. A signature is CKM_ECDSA over the SHA-384 digest computed here; the
token returns r‖s, which python-pkcs11 encodes as the DER ECDSA-Sig-Value X.509 wants.

The library is loaded once per process, after gunicorn's fork (PKCS#11 modules must not be
shared across a fork); each operation opens and logs in its own session.
"""

from __future__ import annotations

import functools
import os
import secrets
from urllib.parse import quote, unquote, unquote_to_bytes

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters

from .keys import ROOT, SIGNATURE_HASH, KeyBackend, KeyUnavailable

# What init_ca asks of the token for a CA's private key; a test reads these back.
PRIVATE_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
}


@functools.cache
def _library(module: str, pid: int) -> pkcs11.lib:
    # Keyed by pid: a forked worker loads the module afresh rather than use its parent's state.
    return pkcs11.lib(module)


def token_label(name: str) -> str:
    """The root's own token (CERTPORTAL_PKCS11_ROOT_TOKEN_LABEL) when there is one, else the portal's token."""
    if name == ROOT and settings.PKCS11_ROOT_TOKEN_LABEL:
        return settings.PKCS11_ROOT_TOKEN_LABEL
    return settings.PKCS11_TOKEN_LABEL


def _session(name: str = ""):
    label, label_setting, pin, pin_setting = (
        settings.PKCS11_TOKEN_LABEL, "CERTPORTAL_PKCS11_TOKEN_LABEL", settings.PKCS11_PIN, "CERTPORTAL_PKCS11_PIN"
    )
    if name == ROOT and settings.PKCS11_ROOT_TOKEN_LABEL:
        # The root's token: its PIN is given only to init_ca and sign_root_crl, as the root's passphrase is.
        label, label_setting = settings.PKCS11_ROOT_TOKEN_LABEL, "CERTPORTAL_PKCS11_ROOT_TOKEN_LABEL"
        pin, pin_setting = settings.PKCS11_ROOT_PIN, "CERTPORTAL_PKCS11_ROOT_PIN"
        if not pin:
            raise KeyUnavailable(
                "The root CA key is offline in its own token: this command needs CERTPORTAL_PKCS11_ROOT_PIN, "
                "which only the root key ceremony's operator gives (see deploy/README.md)."
            )
    try:
        token = _library(settings.PKCS11_MODULE, os.getpid()).get_token(token_label=label)
        return token.open(rw=True, user_pin=pin)
    except PKCS11Error as error:
        raise ImproperlyConfigured(
            f"The PKCS#11 token {label!r} ({label_setting}) cannot be opened with {pin_setting}: "
            f"{type(error).__name__}"
        ) from None


def key_uri(label: str, key_id: bytes, token: str | None = None) -> str:
    token = token or settings.PKCS11_TOKEN_LABEL
    return f"pkcs11:token={quote(token)};object={quote(label)};id={quote(key_id)}"


def parse_key_uri(name: str, reference: str) -> tuple[str, bytes]:
    if not reference.startswith("pkcs11:"):
        raise ImproperlyConfigured(
            f"The {name} CA key is not in a PKCS#11 token; "
            "CERTPORTAL_KEY_BACKEND must name the backend that created it."
        )
    parts = dict(part.split("=", 1) for part in reference.removeprefix("pkcs11:").split(";"))
    if unquote(parts.get("token", "")) != token_label(name):
        raise ImproperlyConfigured(f"The {name} CA key is in token {parts.get('token')!r}, not the configured one.")
    return unquote(parts["object"]), unquote_to_bytes(parts["id"])


class Pkcs11Backend(KeyBackend):
    """Keys generated in and used by the token; only their names are stored."""

    def generate(self, name: str) -> str:
        label, key_id = f"certportal-{name}", secrets.token_bytes(16)
        with _session(name) as session:
            parameters = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")}, local=True
            )
            parameters.generate_keypair(
                store=True, label=label, id=key_id,
                public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
                private_template=PRIVATE_KEY_TEMPLATE,
            )
        return key_uri(label, key_id, token_label(name))

    def _key(self, session, name: str, reference: str, object_class: ObjectClass):
        label, key_id = parse_key_uri(name, reference)
        try:
            return session.get_key(object_class=object_class, key_type=KeyType.EC, label=label, id=key_id)
        except PKCS11Error:
            raise ImproperlyConfigured(f"The {name} CA key ({reference}) is not in the token.") from None

    def public_key(self, name: str, reference: str) -> ec.EllipticCurvePublicKey:
        with _session(name) as session:
            public = self._key(session, name, reference, ObjectClass.PUBLIC_KEY)
            return serialization.load_der_public_key(encode_ec_public_key(public))

    def sign(self, name: str, reference: str, data: bytes) -> bytes:
        digest = hashes.Hash(SIGNATURE_HASH())
        digest.update(data)
        with _session(name) as session:
            private = self._key(session, name, reference, ObjectClass.PRIVATE_KEY)
            raw = private.sign(digest.finalize(), mechanism=Mechanism.ECDSA)
        return encode_ecdsa_signature(raw)
