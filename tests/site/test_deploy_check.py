"""`manage.py check --deploy` stays clean with production settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


BLOCKLIST = ROOT / "tests" / "data" / "one-record-blocklist.dat"  # badkeys' format: one 16-byte record
NO_CACHE = ROOT / "tests" / "data" / "no-such-cache"  # an XDG_CACHE_HOME with no badkeys cache in it


def production_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CERTPORTAL_", "DJANGO_"))}
    env.update(
        CERTPORTAL_DEBUG="false",
        DATABASE_URL="postgres://certportal@db.bank.internal:5432/certportal",  # not connected to by `check`
        CELERY_BROKER_URL="redis://redis.bank.internal:6379/0",
        CERTPORTAL_EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        CERTPORTAL_SECRET_KEY=secrets.token_urlsafe(50),
        CERTPORTAL_ISSUING_CA_PASSPHRASE=secrets.token_urlsafe(24),
        CERTPORTAL_ALLOWED_HOSTS="portal.bank.example",
        CERTPORTAL_PUBLIC_BASE_URL="https://portal.bank.example",
        CERTPORTAL_TRUSTED_PROXIES="10.0.0.5",
    )
    env.update({"CERTPORTAL_WEAK_KEY_BLOCKLIST": str(BLOCKLIST), "XDG_CACHE_HOME": str(NO_CACHE), **overrides})
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_insecure_cookies():
    result = check_deploy(production_env(CERTPORTAL_SECURE_COOKIES="false"))
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stdout + result.stderr


def test_check_deploy_warns_when_the_weak_key_blocklist_is_not_installed():
    result = check_deploy(production_env(CERTPORTAL_WEAK_KEY_BLOCKLIST=""))
    assert result.returncode != 0
    assert "certificates.W001" in result.stdout + result.stderr


def test_without_the_variable_the_blocklist_in_badkeys_own_cache_is_used(tmp_path):
    """Where `badkeys --update-bl` writes it: $XDG_CACHE_HOME/badkeys/blocklist.dat."""
    (tmp_path / "badkeys").mkdir()
    (tmp_path / "badkeys" / "blocklist.dat").write_bytes(BLOCKLIST.read_bytes())

    result = check_deploy(production_env(CERTPORTAL_WEAK_KEY_BLOCKLIST="", XDG_CACHE_HOME=str(tmp_path)))

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_blocklist_that_is_not_badkeys_format_stops_start_up(tmp_path):
    (tmp_path / "blocklist.dat").write_bytes(b"not sixteen-byte records")

    result = check_deploy(production_env(CERTPORTAL_WEAK_KEY_BLOCKLIST=str(tmp_path / "blocklist.dat")))

    assert result.returncode != 0
    assert "CERTPORTAL_WEAK_KEY_BLOCKLIST must name badkeys' blocklist.dat" in result.stderr
