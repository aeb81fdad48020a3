"""Settings for `make bench`: the portal's own settings, with baseline views mounted beside it."""

import os

from certportal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

# The login figure's baseline: the hash the portal used before Argon2id (Django's PBKDF2 default).
if os.environ.get("BENCH_PASSWORD_HASHER") == "pbkdf2":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]

# bench/templates: the fair peer's template, in Django's template language (bench/views.py).
TEMPLATES = [  # noqa: F405
    {**engine, "DIRS": [*engine["DIRS"], BASE_DIR / "bench" / "templates"]}  # noqa: F405
    if engine["BACKEND"].endswith("DjangoTemplates") else engine
    for engine in TEMPLATES  # noqa: F405
]
