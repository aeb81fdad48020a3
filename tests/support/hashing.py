"""Password hashers for tests: one that counts its work (the same replies must cost the same hashing, counted,
not timed), one stronger than the suite's fast hasher (a hash upgraded at login)."""

from __future__ import annotations

from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """Counts the passwords it hashes (make_password and check_password both end in encode)."""

    hashed = 0

    def encode(self, password, salt):
        CountingHasher.hashed += 1
        return super().encode(password, salt)


class FewIterationsPBKDF2(PBKDF2PasswordHasher):
    """A stronger hasher than the one the password was stored with, as after a Django upgrade."""

    iterations = 1000
