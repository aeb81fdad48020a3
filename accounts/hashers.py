"""The password hash of every ID: Argon2id at OWASP's minimum memory cost, tuned for the 09:00 peak.

Django's own Argon2PasswordHasher defaults to 100 MiB and 8 lanes per hash, which a login
burst of a few dozen a second cannot afford on a small machine. OWASP's Password Storage
Cheat Sheet lists Argon2id with m = 19 MiB, t = 2, p = 1 as its first recommended
configuration; it costs about 20 ms of one core here, against about 300 ms for PBKDF2 at
1,000,000 iterations, and resists GPU guessing better. Hashes of the older hashers in
settings.PASSWORD_HASHERS are upgraded to this one at the ID's next successful login.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class BankArgon2idHasher(Argon2PasswordHasher):
    """Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's minimum; settings.PASSWORD_HASHERS lists it first)."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
