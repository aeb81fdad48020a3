"""What the personas share (their fixtures are in tests/conftest.py).

Personas (after healthchecks' Alice/Bob/Charlie): `alice` administers contract A, `bob` is a
user ID of contract A, `charlie` administers contract B, `dave` is a user ID of contract B,
`olivia` is a bank operator.
"""

PASSWORD = "Correct-horse-2026"  # every persona's password

ROOT_PASSPHRASE = "a-test-root-passphrase-for-the-ceremony"  # the root's secret, as at the key ceremony
