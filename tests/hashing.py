"""A password hasher that counts its work: the same replies must cost the same hashing, counted, not timed."""

from __future__ import annotations

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """Counts the passwords it hashes (make_password and check_password both end in encode)."""

    hashed = 0

    def encode(self, password, salt):
        CountingHasher.hashed += 1
        return super().encode(password, salt)
