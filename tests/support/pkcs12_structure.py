"""Every parameter of a PKCS#12 file, read with pyasn1 (RFC 7292, 8018, 5652 modules), to compare two files.

`describe()` decrypts what the file encrypts (PBKDF2 from hashlib, the PKCS#12 KDF of RFC 7292
B.2 written out below, the ciphers from the openssl command), records each algorithm and its
parameters, salt lengths, iteration counts, the bags and their attributes, and whether every
layer is DER (decoded, then encoded again by pyasn1's DER encoder, byte for byte the same).
Random values (salts, IVs, ciphertexts) are left out, so that two files made the same way
describe the same.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess

from cryptography import x509
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import char, univ
from pyasn1_alt_modules import rfc5208, rfc5652, rfc5915, rfc7292, rfc8018

PBES2 = str(rfc8018.id_PBES2)
PKCS12_PBE = {
    str(rfc7292.pbeWithSHAAnd3_KeyTripleDES_CBC): ("des-ede3-cbc", 24, 8),
    str(rfc7292.pbeWithSHAAnd40BitRC2_CBC): ("rc2-40-cbc", 5, 8),
}
OPENSSL_CIPHERS = {"2.16.840.1.101.3.4.1.42": "aes-256-cbc"}
DIGESTS = {  # digest and HMAC OIDs: the hashlib name
    "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256",
    str(rfc8018.id_hmacWithSHA1): "sha1", str(rfc8018.id_hmacWithSHA256): "sha256",
}
FRIENDLY_NAME = str(rfc7292.pkcs_9_at_friendlyName)
LOCAL_KEY_ID = str(rfc7292.pkcs_9_at_localKeyId)


def pkcs12_kdf(password: str, salt: bytes, purpose: int, iterations: int, length: int, digest: str = "sha1") -> bytes:
    """RFC 7292 appendix B.2: purpose 1 key, 2 IV, 3 MAC key."""
    v = hashlib.new(digest).block_size

    def stretch(data: bytes) -> bytes:  # copies of data filling whole v-byte blocks
        size = v * -(-len(data) // v)
        return (data * (size // len(data) + 1))[:size] if data else b""

    diversifier = bytes([purpose]) * v
    block = stretch(salt) + stretch(password.encode("utf-16-be") + b"\0\0")
    out = b""
    while len(out) < length:
        a = diversifier + block
        for _ in range(iterations):
            a = hashlib.new(digest, a).digest()
        out += a
        b = int.from_bytes(stretch(a)[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i:i + v], "big") + b) % (1 << (8 * v))).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    return out[:length]


class Reader:
    def __init__(self, password: str):
        self.password = password
        self.all_der = True

    def decode(self, data: bytes, spec):
        value, rest = decoder.decode(data, asn1Spec=spec)
        assert not rest, "trailing bytes"
        if encoder.encode(value) != bytes(data):
            self.all_der = False
        return value

    def decrypt(self, algorithm, ciphertext: bytes) -> tuple[dict, bytes]:
        oid = str(algorithm["algorithm"])
        if oid == PBES2:
            params = self.decode(algorithm["parameters"], rfc8018.PBES2_params())
            kdf = params["keyDerivationFunc"]
            kdf_params = self.decode(kdf["parameters"], rfc8018.PBKDF2_params())
            prf = kdf_params["prf"]
            scheme = params["encryptionScheme"]
            iv = self.decode(scheme["parameters"], univ.OctetString())
            cipher = OPENSSL_CIPHERS[str(scheme["algorithm"])]
            salt = bytes(kdf_params["salt"]["specified"])
            iterations = int(kdf_params["iterationCount"])
            key = hashlib.pbkdf2_hmac(DIGESTS[str(prf["algorithm"])], self.password.encode(), salt, iterations, 32)
            described = {
                "scheme": oid,
                "kdf": str(kdf["algorithm"]),
                "salt_length": len(salt),
                "iterations": iterations,
                "key_length": int(kdf_params["keyLength"]) if kdf_params["keyLength"].isValue else None,
                "prf": str(prf["algorithm"]),
                "prf_parameters": prf["parameters"].prettyPrint() if prf["parameters"].isValue else None,
                "cipher": str(scheme["algorithm"]),
                "iv_length": len(iv),
            }
            return described, openssl_decrypt(cipher, key, bytes(iv), ciphertext)
        params = self.decode(algorithm["parameters"], rfc7292.Pkcs_12PbeParams())
        cipher, key_length, iv_length = PKCS12_PBE[oid]
        salt, iterations = bytes(params["salt"]), int(params["iterations"])
        key = pkcs12_kdf(self.password, salt, 1, iterations, key_length)
        iv = pkcs12_kdf(self.password, salt, 2, iterations, iv_length)
        described = {"scheme": oid, "salt_length": len(salt), "iterations": iterations}
        return described, openssl_decrypt(cipher, key, iv, ciphertext)

    def attributes(self, bag, leaf_sha1: bytes) -> list:
        described = []
        for attribute in bag["bagAttributes"]:
            kind = str(attribute["attrType"])
            values = []
            for value in attribute["attrValues"]:
                if kind == FRIENDLY_NAME:
                    values.append(("BMPString", str(self.decode(value, char.BMPString()))))
                elif kind == LOCAL_KEY_ID:
                    octets = bytes(self.decode(value, univ.OctetString()))
                    values.append(("OCTET STRING", "SHA-1 of the certificate" if octets == leaf_sha1 else octets.hex()))
                else:
                    values.append(("?", bytes(value).hex()))
            described.append((kind, values))
        return described

    def certificate(self, cert_bag) -> bytes:
        return bytes(self.decode(cert_bag["certValue"], univ.OctetString()))

    def safe_contents(self, data: bytes, leaf_sha1: bytes) -> list:
        bags = []
        for bag in self.decode(data, rfc7292.SafeContents()):
            kind = str(bag["bagId"])
            described = {"type": kind, "attributes": self.attributes(bag, leaf_sha1)}
            if kind == str(rfc7292.id_certBag):
                cert_bag = self.decode(bag["bagValue"], rfc7292.CertBag())
                certificate = x509.load_der_x509_certificate(self.certificate(cert_bag))
                described.update(cert_type=str(cert_bag["certId"]), subject=certificate.subject.rfc4514_string())
            elif kind == str(rfc7292.id_pkcs8ShroudedKeyBag):
                shrouded = self.decode(bag["bagValue"], rfc7292.PKCS8ShroudedKeyBag())
                encryption, plain = self.decrypt(shrouded["encryptionAlgorithm"], bytes(shrouded["encryptedData"]))
                key = self.decode(plain, rfc5208.PrivateKeyInfo())
                ec_key = self.decode(key["privateKey"], rfc5915.ECPrivateKey())
                described.update(
                    encryption=encryption,
                    key_algorithm=str(key["privateKeyAlgorithm"]["algorithm"]),
                    key_curve=str(self.decode(key["privateKeyAlgorithm"]["parameters"], univ.ObjectIdentifier())),
                    key_has_curve_inside=ec_key["parameters"].isValue,
                    key_has_public_key=ec_key["publicKey"].isValue,
                )
            bags.append(described)
        return bags


def openssl_decrypt(cipher: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    result = subprocess.run(
        ["openssl", "enc", "-d", f"-{cipher}", "-K", key.hex(), "-iv", iv.hex(),
         "-provider", "legacy", "-provider", "default"],
        input=data, capture_output=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def describe(p12: bytes, password: str) -> dict:
    """Everything about the file but its random values, and `der`: whether every layer is DER."""
    reader = Reader(password)
    pfx = reader.decode(p12, rfc7292.PFX())
    auth_safe_octets = bytes(reader.decode(pfx["authSafe"]["content"], univ.OctetString()))
    mac = pfx["macData"]
    mac_digest = DIGESTS[str(mac["mac"]["digestAlgorithm"]["algorithm"])]
    mac_key = pkcs12_kdf(password, bytes(mac["macSalt"]), 3, int(mac["iterations"]),
                         hashlib.new(mac_digest).digest_size, mac_digest)
    leaf_sha1 = b""
    contents = []
    infos = reader.decode(auth_safe_octets, rfc7292.AuthenticatedSafe())
    plain_contents = []
    for info in infos:
        kind = str(info["contentType"])
        if kind == str(rfc5652.id_encryptedData):
            encrypted = reader.decode(info["content"], rfc5652.EncryptedData())
            eci = encrypted["encryptedContentInfo"]
            encryption, plain = reader.decrypt(eci["contentEncryptionAlgorithm"], bytes(eci["encryptedContent"]))
            head = {"type": kind, "version": int(encrypted["version"]), "content_type": str(eci["contentType"]),
                    "encryption": encryption}
        else:
            plain = bytes(reader.decode(info["content"], univ.OctetString()))
            head = {"type": kind}
        plain_contents.append((head, plain))
        for bag in reader.decode(plain, rfc7292.SafeContents()):
            # The certificate with attributes is the one the key belongs to (the CAs have none).
            if str(bag["bagId"]) == str(rfc7292.id_certBag) and len(bag["bagAttributes"]):
                leaf_sha1 = hashlib.sha1(reader.certificate(reader.decode(bag["bagValue"], rfc7292.CertBag()))).digest()
    for head, plain in plain_contents:
        contents.append({**head, "bags": reader.safe_contents(plain, leaf_sha1)})
    return {
        "version": int(pfx["version"]),
        "auth_safe_type": str(pfx["authSafe"]["contentType"]),
        "contents": contents,
        "mac": {
            "digest": str(mac["mac"]["digestAlgorithm"]["algorithm"]),
            "digest_parameters": mac["mac"]["digestAlgorithm"]["parameters"].isValue,
            "length": len(mac["mac"]["digest"]),
            "salt_length": len(mac["macSalt"]),
            "iterations": int(mac["iterations"]),
            "verifies": hmac.compare_digest(
                hmac.new(mac_key, auth_safe_octets, mac_digest).digest(), bytes(mac["mac"]["digest"])
            ),
        },
        "der": reader.all_der,
    }
