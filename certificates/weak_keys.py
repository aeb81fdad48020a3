"""Keys with known weaknesses, found with badkeys (https://badkeys.info), as Boulder refuses them.

The arithmetic checks (Fermat, small prime factors, ROCA, invalid RSA values) ship with the
badkeys package. Its blocklist of compromised keys (Debian's CVE-2008-0166 keys for RSA and
P-256, keys published in firmware and documentation ...) does not: `badkeys --update-bl`
downloads it, so it is fetched at install time (deploy/README.md) and named by
CERTPORTAL_WEAK_KEY_BLOCKLIST. Nothing is downloaded while the portal runs.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

FERMAT = "fermat"
SMALL_FACTORS = "small_factors"
ROCA = "roca"
BLOCKLISTED = "blocklisted"

# badkeys' own check names; "rsainvalid" catches values no RSA key could have.
_RSA_CHECKS = {"fermat": FERMAT, "smallfactors": SMALL_FACTORS, "rsainvalid": SMALL_FACTORS, "roca": ROCA}
# badkeys' blocklist.dat: sorted 16-byte records, the first 15 bytes of SHA-256 over the key's
# value (RSA: the modulus; EC: the x coordinate), big-endian, then one byte naming the list.
_RECORD, _HASH = 16, 15


def weakness(public_key) -> str | None:
    """FERMAT, SMALL_FACTORS, ROCA or BLOCKLISTED for a key known to be weak, else None."""
    if isinstance(public_key, rsa.RSAPublicKey):
        # Imported when first needed: badkeys loads much of cryptography and pyOpenSSL, which
        # the worker and beat, which never read a CSR, should not wait for at start.
        from badkeys.checks import checkrsa

        numbers = public_key.public_numbers()
        found = checkrsa(numbers.n, e=numbers.e, checks=list(_RSA_CHECKS))
        for check, name in _RSA_CHECKS.items():
            if check in found:
                return name
        value = numbers.n
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        value = public_key.public_numbers().x
    else:
        return None
    return BLOCKLISTED if _blocklisted(value) else None


def _blocklisted(value: int) -> bool:
    records = _blocklist(settings.WEAK_KEY_BLOCKLIST)
    if records is None:
        return False
    wanted = hashlib.sha256(value.to_bytes((value.bit_length() + 7) // 8, "big")).digest()[:_HASH]
    low, high = 0, len(records) // _RECORD - 1
    while low <= high:
        middle = (low + high) // 2
        found = records[middle * _RECORD : middle * _RECORD + _HASH]
        if found == wanted:
            return True
        if found < wanted:
            low = middle + 1
        else:
            high = middle - 1
    return False


@functools.lru_cache(maxsize=2)
def _blocklist(path: str | None) -> mmap.mmap | None:
    # Mapped once per process; the operating system shares the pages between workers.
    if path is None:
        return None
    with Path(path).open("rb") as file:
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
