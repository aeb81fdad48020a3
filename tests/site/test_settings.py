"""Settings are read strictly: a malformed value stops start-up and names its variable."""

from __future__ import annotations

import json

import pytest

from tests.support.servers import SETUP, start_django

PRODUCTION = {
    "CERTPORTAL_DEBUG": "false",
    "CERTPORTAL_SECRET_KEY": "k" * 20 + "-production-secret-key-of-fifty-chars",
    "CERTPORTAL_ALLOWED_HOSTS": "portal.bank.example",
    "CERTPORTAL_PUBLIC_BASE_URL": "https://portal.bank.example",
    "CERTPORTAL_ISSUING_CA_PASSPHRASE": "a long production CA passphrase",
    "DATABASE_URL": "postgres://certportal:s3cret@db.bank.internal:5433/certportal?sslmode=require",
    "CELERY_BROKER_URL": "redis://redis.bank.internal:6379/1",
    "CERTPORTAL_EMAIL_BACKEND": "anymail.backends.amazon_ses.EmailBackend",
    "CERTPORTAL_FROM_EMAIL": "Demo Bank <certportal@bank.example>",
    "CERTPORTAL_TRUSTED_PROXIES": "10.0.0.5,10.0.0.6",
    "CERTPORTAL_REMINDER_TIME": "08:30",
    "CERTPORTAL_LOCKOUT_THRESHOLD": "3",
}


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CERTPORTAL_DEBUG": "maybe"}, "CERTPORTAL_DEBUG"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite://"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:notaport/test"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/"}, "DATABASE_URL"),
        ({"CERTPORTAL_LOCKOUT_THRESHOLD": "abc"}, "CERTPORTAL_LOCKOUT_THRESHOLD"),
        ({"CERTPORTAL_LOCKOUT_THRESHOLD": "0"}, "CERTPORTAL_LOCKOUT_THRESHOLD"),
        ({"CERTPORTAL_CERTIFICATE_VALIDITY_MONTHS": "13"}, "CERTPORTAL_CERTIFICATE_VALIDITY_MONTHS"),
        ({"CERTPORTAL_ADDRESS_ATTEMPT_LIMIT": "0"}, "CERTPORTAL_ADDRESS_ATTEMPT_LIMIT"),
        ({"CERTPORTAL_OBTAIN_ID_ATTEMPT_WINDOW_MINUTES": "an hour"}, "CERTPORTAL_OBTAIN_ID_ATTEMPT_WINDOW_MINUTES"),
        ({"CELERY_BROKER_URL": "ftp://x"}, "CELERY_BROKER_URL"),
        ({"CERTPORTAL_DEBUG": "false"}, "CERTPORTAL_SECRET_KEY"),
        ({"CERTPORTAL_SECRET_KEY": "too-short"}, "CERTPORTAL_SECRET_KEY"),
        ({**PRODUCTION, "CERTPORTAL_ISSUING_CA_PASSPHRASE": ""}, "CERTPORTAL_ISSUING_CA_PASSPHRASE"),
        ({"CERTPORTAL_ISSUING_CA_PASSPHRASE": "short"}, "CERTPORTAL_ISSUING_CA_PASSPHRASE"),
        ({"CERTPORTAL_ROOT_CA_PASSPHRASE": "short"}, "CERTPORTAL_ROOT_CA_PASSPHRASE"),
        # The one passphrase of earlier versions is refused with the way to the two new ones.
        ({**PRODUCTION, "CERTPORTAL_ISSUING_CA_PASSPHRASE": "", "CERTPORTAL_CA_PASSPHRASE": "a long old passphrase"},
         "rewrap_ca_keys"),
        (
            {"CERTPORTAL_ISSUING_CA_PASSPHRASE": "the same long passphrase",
             "CERTPORTAL_ROOT_CA_PASSPHRASE": "the same long passphrase"},
            "CERTPORTAL_ROOT_CA_PASSPHRASE",
        ),
        ({"CERTPORTAL_KEY_BACKEND": "vault"}, "CERTPORTAL_KEY_BACKEND"),
        ({"CERTPORTAL_KEY_BACKEND": "pkcs11"}, "CERTPORTAL_PKCS11_MODULE"),
        ({"CERTPORTAL_ROOT_CRL_URL": "ldap://x/root"}, "CERTPORTAL_ROOT_CRL_URL"),
        ({**PRODUCTION, "CERTPORTAL_ALLOWED_HOSTS": ""}, "CERTPORTAL_ALLOWED_HOSTS"),
        ({"CERTPORTAL_ALLOWED_HOSTS": "a.example,,b.example"}, "CERTPORTAL_ALLOWED_HOSTS"),
        ({"CERTPORTAL_REMINDER_TIME": "25:99"}, "CERTPORTAL_REMINDER_TIME"),
        ({"CERTPORTAL_CRL_URL": "ftp://portal.bank.example/crl"}, "CERTPORTAL_CRL_URL"),
        ({"CERTPORTAL_CRL_REFRESH_MARGIN_HOURS": "24"}, "CERTPORTAL_CRL_REFRESH_MARGIN_HOURS"),
        ({"CERTPORTAL_CRL_VALIDITY_HOURS": "4"}, "CERTPORTAL_CRL_VALIDITY_HOURS"),
        ({"CERTPORTAL_TRUSTED_PROXIES": "proxy.internal"}, "CERTPORTAL_TRUSTED_PROXIES"),
        ({"CERTPORTAL_PROXY_SOCKET": "yes please"}, "CERTPORTAL_PROXY_SOCKET"),
        # Two ways of trusting nginx at once would leave the TCP door open beside the socket.
        ({"CERTPORTAL_PROXY_SOCKET": "true", "CERTPORTAL_TRUSTED_PROXIES": "127.0.0.1"}, "CERTPORTAL_PROXY_SOCKET"),
        ({"CERTPORTAL_EMAIL_BACKEND": "not a backend"}, "CERTPORTAL_EMAIL_BACKEND"),
        ({"CERTPORTAL_FROM_EMAIL": "nobody"}, "CERTPORTAL_FROM_EMAIL"),
        ({"CERTPORTAL_LOG_LEVEL": "verbose"}, "CERTPORTAL_LOG_LEVEL"),
        ({"CERTPORTAL_REMINDER_TIME": "00:00+00:00"}, "CERTPORTAL_REMINDER_TIME"),
        ({"CERTPORTAL_REMINDER_TIME": "09:00:30"}, "CERTPORTAL_REMINDER_TIME"),
        ({"ANYMAIL_IGNORE_RECIPIENT_STATUS": "nope"}, "ANYMAIL_IGNORE_RECIPIENT_STATUS"),
        ({"CERTPORTAL_CERTIFICATE_POLICY_OID": "bank-policy-1"}, "CERTPORTAL_CERTIFICATE_POLICY_OID"),
        ({"CERTPORTAL_CERTIFICATE_POLICY_OID": "1.3.6.1.4.1.32473."}, "CERTPORTAL_CERTIFICATE_POLICY_OID"),
        ({"CERTPORTAL_CERTIFICATE_POLICY_OID": "1.40.1"}, "CERTPORTAL_CERTIFICATE_POLICY_OID"),
        ({"CERTPORTAL_OCSP_URL": "ldap://portal.bank.example/ocsp"}, "CERTPORTAL_OCSP_URL"),
        ({"CERTPORTAL_OCSP_VALIDITY_MINUTES": "0"}, "CERTPORTAL_OCSP_VALIDITY_MINUTES"),
        ({"CERTPORTAL_OCSP_RESPONDER_VALIDITY_DAYS": "365"}, "CERTPORTAL_OCSP_RESPONDER_VALIDITY_DAYS"),
        ({"ANYMAIL_REQUESTS_TIMEOUT": "ten"}, "ANYMAIL_REQUESTS_TIMEOUT"),
        ({"ANYMAIL_REQUESTS_TIMEOUT": "0"}, "ANYMAIL_REQUESTS_TIMEOUT"),
        ({"ANYMAIL_REQUESTS_TIMEOUT": "3,10,5"}, "ANYMAIL_REQUESTS_TIMEOUT"),
        ({"ANYMAIL_SEND_DEFAULTS": "tags=a"}, "ANYMAIL_SEND_DEFAULTS"),
        ({"ANYMAIL_SPARKPOST_TRACK_CLICKS": "sometimes"}, "ANYMAIL_SPARKPOST_TRACK_CLICKS"),
        ({"CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS": "0"}, "CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS"),
        ({"CERTPORTAL_REMINDER_SWEEP_SECONDS": "x"}, "CERTPORTAL_REMINDER_SWEEP_SECONDS"),
        # The lease must outlast a send waiting for the provider, or that send would be taken over.
        ({"CERTPORTAL_EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL_REQUESTS_TIMEOUT": "30",
          "CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS": "20"}, "CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS"),
        # Production states what would otherwise fall back to a development default.
        *(({**PRODUCTION, name: ""}, name) for name in (
            "CERTPORTAL_PUBLIC_BASE_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CERTPORTAL_EMAIL_BACKEND",
        )),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_malformed_value_stops_start_up_naming_the_variable(tmp_path, variables, named):
    result = start_django(tmp_path, **variables)

    assert result.returncode != 0, f"started with {variables}"
    assert "ImproperlyConfigured" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert named in last_line, result.stderr


def test_the_production_environment_starts_with_exactly_those_values(tmp_path):
    code = SETUP + (
        "; from django.conf import settings as s; import json; db = s.DATABASES['default']; print(json.dumps(["
        "s.DEBUG, db['ENGINE'], db['HOST'], db['PORT'], db['NAME'], db['USER'], db['OPTIONS'], s.CELERY_BROKER_URL,"
        " s.EMAIL_BACKEND, s.ALLOWED_HOSTS, s.TRUSTED_PROXY_ADDRESSES, str(s.REMINDER_TIME), s.LOCKOUT_THRESHOLD,"
        " s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CRL_URL, s.OCSP_URL, s.CA_ISSUERS_URL,"
        " s.CERTIFICATE_POLICY_OID, s.ROOT_CRL_URL, s.KEY_BACKEND, s.ROOT_CA_PASSPHRASE]))"
    )
    result = start_django(tmp_path, code, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        False, "certportal.postgresql", "db.bank.internal", "5433", "certportal", "certportal",
        {"sslmode": "require"}, "redis://redis.bank.internal:6379/1", "anymail.backends.amazon_ses.EmailBackend",
        ["portal.bank.example"], ["10.0.0.5", "10.0.0.6"], "08:30:00", 3, True, True,
        "http://portal.bank.example/pki/crl",  # plain HTTP on port 80, as CRL consumers expect
        "http://portal.bank.example/pki/ocsp", "http://portal.bank.example/pki/ca.crt",  # likewise
        "1.3.6.1.4.1.32473.1.1",  # the documentation placeholder until the bank sets its own
        "http://portal.bank.example/pki/root.crl",
        "encrypted", None,  # the root's secret is not part of a service's environment
    ]


def test_redis_hands_a_dead_workers_task_out_again_when_its_sending_lease_ends(tmp_path):
    code = SETUP + (
        "; from django.conf import settings as s;"
        " print(s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"
    )
    result = start_django(tmp_path, code, CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
                   CERTPORTAL_REMINDER_RETRY_MAX_SECONDS="86400", CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS="600")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 600  # not hours: a killed worker's reminder goes out within minutes


def test_anymail_settings_reach_anymail_as_their_types_not_strings(tmp_path):
    code = SETUP + "; from django.conf import settings as s; import json; print(json.dumps(s.ANYMAIL))"
    result = start_django(tmp_path, code, ANYMAIL_IGNORE_RECIPIENT_STATUS="false", ANYMAIL_DEBUG_API_REQUESTS="true",
                   ANYMAIL_POSTMARK_SERVER_TOKEN="token-123", ANYMAIL_REQUESTS_TIMEOUT="10",
                   ANYMAIL_SEND_DEFAULTS='{"tags": ["portal"]}', ANYMAIL_SPARKPOST_TRACK_CLICKS="no")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "IGNORE_RECIPIENT_STATUS": False, "DEBUG_API_REQUESTS": True, "POSTMARK_SERVER_TOKEN": "token-123",
        "REQUESTS_TIMEOUT": 10.0, "SEND_DEFAULTS": {"tags": ["portal"]}, "SPARKPOST_TRACK_CLICKS": False,
    }


def test_the_anymail_timeout_may_be_connect_and_read_seconds(tmp_path):
    code = SETUP + "; from django.conf import settings as s; print(repr(s.ANYMAIL['REQUESTS_TIMEOUT']))"
    result = start_django(tmp_path, code, ANYMAIL_REQUESTS_TIMEOUT="3.05, 27")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3.05, 27.0)"


def test_with_no_environment_the_portal_runs_embedded_in_debug_mode(tmp_path):
    code = SETUP + (
        "; from django.conf import settings as s; import json; print(json.dumps([s.DEBUG,"
        " s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], s.CELERY_BROKER_URL, s.LANGUAGE_CODE]))"
    )
    result = start_django(tmp_path, code)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        True, "django.db.backends.sqlite3", str(tmp_path / "certportal.sqlite3"), "filesystem://", "ja"
    ]
