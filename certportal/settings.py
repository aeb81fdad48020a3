"""certportal settings: every value that may vary is read from the environment here.

Parsing is strict: a malformed value raises ImproperlyConfigured naming the variable,
never a silent fallback. With no environment at all the portal runs on one machine
(SQLite, a file-backed Celery broker, e-mail written to files) in debug mode.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CERTPORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded database, mail and broker live here


# --- strict environment readers -------------------------------------------------------


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if not minimum <= number <= maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, not {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ImproperlyConfigured(f"{name} must be a comma-separated list without empty items")
    return items


def env_time(name: str, default: time) -> time:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        parsed = None
    # Japan time, to the minute: an offset or seconds would be silently dropped by the schedule.
    if parsed is None or parsed.tzinfo is not None or parsed.second or parsed.microsecond:
        raise ImproperlyConfigured(f"{name} must be a time as HH:MM (Japan time), not {value!r}")
    return parsed


def require_when_not_debug(debug: bool, *names: str) -> None:
    """Production states these itself: a development default there would be silently wrong."""
    for name in names:
        if not debug and not os.environ.get(name):
            raise ImproperlyConfigured(f"{name} is required when CERTPORTAL_DEBUG is off")


def parse_database_url(name: str, url: str) -> dict:
    """sqlite:///relative/or//absolute/path or postgres://user:pass@host:port/db."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not path:
            raise ImproperlyConfigured(f"{name} must name a file: sqlite:///path/to/db.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path if Path(path).is_absolute() else str(BASE_DIR / path),
            # IMMEDIATE takes the write lock when a transaction starts, so that two
            # issuances for the same ID are serialised rather than failing half-way.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not memory: threads and server processes in tests must share it.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    if parts.scheme in ("postgres", "postgresql"):
        db = unquote(parts.path.lstrip("/"))
        if not db or not parts.hostname:
            raise ImproperlyConfigured(f"{name} must be postgres://user@host:port/database, not {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port: {url!r}") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            # Django's, with a health check that sends SELECT 1 only when the server has written to an idle
            # connection (certportal/postgresql/base.py says why).
            "ENGINE": "certportal.postgresql",
            "NAME": db,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname,
            "PORT": str(port or 5432),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"{name} must start with sqlite:/// or postgres://, not {url!r}")


# --- core -----------------------------------------------------------------------------

DEBUG = env_bool("CERTPORTAL_DEBUG", True)
SECRET_KEY = env_str("CERTPORTAL_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("CERTPORTAL_SECRET_KEY is required when CERTPORTAL_DEBUG is off")
    SECRET_KEY = "certportal-insecure-development-key-do-not-use-in-production"  # noqa: S105 (debug only)
elif len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("CERTPORTAL_SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env_list("CERTPORTAL_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("CERTPORTAL_ALLOWED_HOSTS is required when CERTPORTAL_DEBUG is off")

# The database, the broker and the e-mail backend default to the embedded ones; the public
# address is written into every certificate (its CRL distribution point) and every e-mail.
require_when_not_debug(
    DEBUG, "CERTPORTAL_PUBLIC_BASE_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CERTPORTAL_EMAIL_BACKEND"
)

# The address customers use; the CRL distribution point in every certificate points here.
PUBLIC_BASE_URL = env_str("CERTPORTAL_PUBLIC_BASE_URL", "https://127.0.0.1:8443").rstrip("/")
# Written into every certificate; a URI validators accept (pkilint refuses a bare "localhost").
# In production plain HTTP on port 80, as CRL consumers expect (deploy/nginx.conf serves /pki/ there);
# `make run` has only its HTTPS port.
_public_host = urlsplit(PUBLIC_BASE_URL).hostname or ""
_default_crl_url = (
    f"{PUBLIC_BASE_URL}/pki/crl" if DEBUG
    else f"http://{f'[{_public_host}]' if ':' in _public_host else _public_host}/pki/crl"
)
CRL_URL = env_str("CERTPORTAL_CRL_URL", _default_crl_url)
# The OCSP responder and the issuing CA's certificate (AIA of every client certificate): plain HTTP
# in production like the CRL, since an OCSP or CA-issuers fetch over TLS would need checking itself.
_pki_base = _default_crl_url.removesuffix("/crl")
OCSP_URL = env_str("CERTPORTAL_OCSP_URL", f"{_pki_base}/ocsp")
CA_ISSUERS_URL = env_str("CERTPORTAL_CA_ISSUERS_URL", f"{_pki_base}/ca.crt")
# The root's CRL (signed offline by `manage.py sign_root_crl`), named in the issuing CA certificate.
ROOT_CRL_URL = env_str("CERTPORTAL_ROOT_CRL_URL", _default_crl_url.removesuffix("/pki/crl") + "/pki/root.crl")
for _name, _url in (
    ("CERTPORTAL_PUBLIC_BASE_URL", PUBLIC_BASE_URL), ("CERTPORTAL_CRL_URL", CRL_URL),
    ("CERTPORTAL_OCSP_URL", OCSP_URL), ("CERTPORTAL_CA_ISSUERS_URL", CA_ISSUERS_URL),
    ("CERTPORTAL_ROOT_CRL_URL", ROOT_CRL_URL),
):
    if urlsplit(_url).scheme not in ("http", "https") or not urlsplit(_url).hostname:
        raise ImproperlyConfigured(f"{_name} must be an http(s) URL, not {_url!r}")

INSTALLED_APPS = [
    "certportal.apps.OperatorAdminConfig",  # django.contrib.admin; its site asks for an operator's certificate
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "csp",
    "accounts",
    "certificates",
    "notices",
]

MIDDLEWARE = [
    # Outermost: times the whole of Django's work on a request (notices.metrics).
    "notices.metrics.RequestLatencyMiddleware",
    # Outermost, as they only add headers: Content-Security-Policy and Permissions-Policy on every
    # response, a refusal of the next middleware, static files and both admin sites included.
    "accounts.middleware.ContentSecurityPolicyMiddleware",  # django-csp's, the site's policy built once
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # First: reads the client certificate (gunicorn's TLS or the trusted proxy's header) and
    # refuses, audited, a certificate header from any other address before anything answers.
    "certificates.client_cert.ClientCertificateMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /static/ (the enrollment page's script, the admin's files) from STATIC_ROOT, filled by
    # collectstatic: gunicorn serves it on `make run` and behind nginx alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's, taking the session row the certificate's statement already read (accounts/sessions.py).
    "accounts.sessions.SessionMiddleware",
    "accounts.idle.IdleTimeoutMiddleware",
    "accounts.middleware.LocaleMiddleware",  # Django's, without looking for a language in the path
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Cache-Control: no-store on every answer to a logged-in or enrolling session (shared PCs, proxies).
    "accounts.middleware.NoStoreForSessionsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Ends a session when this connection's certificate is not the one it logged in with.
    "certificates.client_cert.CertificateSessionMiddleware",
    "accounts.middleware.PasswordChangeRequiredMiddleware",
    # Both admin sites: a changelist action's selection that is not a list of IDs gets 400, not 500.
    "accounts.admin_input.AdminSelectionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "certportal.urls"
WSGI_APPLICATION = "certportal.wsgi.application"

TEMPLATES = [
    # The customers' screens (screens/, certportal/jinja2.py); the admin sites and e-mails below.
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "screens"],
        "APP_DIRS": True,  # and each app's jinja2/
        "OPTIONS": {
            "environment": "certportal.jinja2.environment",
            "context_processors": ["certportal.jinja2.page_language"],
        },
    },
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(
        "DATABASE_URL", env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'certportal.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# No password-only sign-in: both logins check the certificate, then the password (counted), themselves.
# The first backend refuses every authenticate(); ModelBackend loads the user of a session.
AUTHENTICATION_BACKENDS = ["accounts.backends.CertificateLoginOnlyBackend", "django.contrib.auth.backends.ModelBackend"]

# The first hasher makes every new hash; the others only verify older hashes, which are upgraded at the
# ID's next successful login (accounts/hashers.py says why Argon2id at these costs).
PASSWORD_HASHERS = [
    "accounts.hashers.BankArgon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
     "OPTIONS": {"user_attributes": ("login_id", "email")}},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.passwords.NotLoginIDValidator"},
    {"NAME": "accounts.passwords.PasswordReuseValidator", "OPTIONS": {"remember": 5}},
]

# --- language and time ----------------------------------------------------------------

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The admin sites write dates and times as accounts.japan_time does (certportal/formats/).
FORMAT_MODULE_PATH = "certportal.formats"
USE_I18N = True
TIME_ZONE = "Asia/Tokyo"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves from here; collectstatic fills it
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- security -------------------------------------------------------------------------

# Django's database sessions, whose row comes with the request's first statement (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_SECURE = env_bool("CERTPORTAL_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = env_int("CERTPORTAL_IDLE_TIMEOUT_MINUTES", 15, minimum=1, maximum=240) * 60
# The age above is an idle timeout: accounts.idle refreshes the session at most this often.
SESSION_REFRESH_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
LOGIN_URL = "login"  # the certificate-and-password login screen at "/"
LOGIN_REDIRECT_URL = "important-notices"
SECURE_HSTS_SECONDS = 0 if DEBUG else 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_SSL_REDIRECT = env_bool("CERTPORTAL_SSL_REDIRECT", not DEBUG)
# The CRL distribution point and the CA chain are fetched over plain HTTP (deploy/nginx.conf).
SECURE_REDIRECT_EXEMPT = [r"^pki/", r"^metrics$"]  # /metrics: the internal listener is plain HTTP
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Only the portal's own files run or style a page: no inline script or style, no other origin
# (django-csp). The enrollment page's key, CSR and PKCS#12 are made by static/certportal/enroll.js.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
    },
}
# No page needs a device or a payment: every powerful feature is denied (django-permissions-policy).
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer", "autoplay", "bluetooth", "camera", "display-capture", "encrypted-media", "fullscreen",
        "geolocation", "gyroscope", "hid", "idle-detection", "magnetometer", "microphone", "midi", "payment",
        "picture-in-picture", "publickey-credentials-get", "screen-wake-lock", "serial", "usb",
        "xr-spatial-tracking",
    )
}

# A request body larger than this is refused with 400 before any view reads it: nginx's own default
# (client_max_body_size 1m), room for a CSR (16 KiB) and an e-mail provider's batch of tracking events.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Addresses of the TLS-terminating proxy (nginx) whose client-certificate headers are trusted.
# How Django knows a request came through nginx, which alone may pass the client certificate.
# Production: gunicorn listens only on a unix socket that only nginx's user can open
# (deploy/certportal.socket); the headers are believed on requests that arrived on a unix
# socket and on no other. The addresses below are for set-ups that need TCP between nginx and
# gunicorn (deploy/README.md says what that risks): every local process can use those addresses.
PROXY_SOCKET = env_bool("CERTPORTAL_PROXY_SOCKET", False)
TRUSTED_PROXY_ADDRESSES = env_list("CERTPORTAL_TRUSTED_PROXIES", [])
if PROXY_SOCKET and TRUSTED_PROXY_ADDRESSES:
    raise ImproperlyConfigured(
        "CERTPORTAL_PROXY_SOCKET and CERTPORTAL_TRUSTED_PROXIES are two ways of trusting nginx: set only one "
        "(the unix socket, unless nginx must reach gunicorn over TCP)."
    )
for _address in TRUSTED_PROXY_ADDRESSES:
    try:
        ipaddress.ip_address(_address)
    except ValueError:
        raise ImproperlyConfigured(f"CERTPORTAL_TRUSTED_PROXIES must list IP addresses, not {_address!r}") from None
# nginx: proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert; X-SSL-Client-Verify $ssl_client_verify.
CLIENT_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
CLIENT_VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"
if PROXY_SOCKET or TRUSTED_PROXY_ADDRESSES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- metrics (notices.metrics) -----------------------------------------------------

# Optional bearer token Prometheus must send to /metrics, on top of nginx keeping it internal.
METRICS_TOKEN = env_str("CERTPORTAL_METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("CERTPORTAL_METRICS_TOKEN must be at least 32 characters long")
# deploy/nginx.conf sets it to "public" on the public servers and to "internal" on the scrape listener.
METRICS_LISTENER_HEADER = "HTTP_X_CERTPORTAL_LISTENER"

# --- accounts -------------------------------------------------------------------------

LOCKOUT_THRESHOLD = env_int("CERTPORTAL_LOCKOUT_THRESHOLD", 5, minimum=1, maximum=20)
# Only a wrong password presented with the ID's own valid certificate counts toward its lock. Attempts
# without one (the login screen) and 電子証明書取得's passwords are bounded instead, in fixed windows
# (accounts.throttle): per client address, and for 電子証明書取得 also per login ID as typed.
ADDRESS_ATTEMPT_LIMIT = env_int("CERTPORTAL_ADDRESS_ATTEMPT_LIMIT", 20, minimum=1, maximum=10000)
ADDRESS_ATTEMPT_WINDOW_MINUTES = env_int("CERTPORTAL_ADDRESS_ATTEMPT_WINDOW_MINUTES", 15, minimum=1, maximum=1440)
OBTAIN_ID_ATTEMPT_LIMIT = env_int("CERTPORTAL_OBTAIN_ID_ATTEMPT_LIMIT", 5, minimum=1, maximum=100)
OBTAIN_ID_ATTEMPT_WINDOW_MINUTES = env_int("CERTPORTAL_OBTAIN_ID_ATTEMPT_WINDOW_MINUTES", 60, minimum=1, maximum=1440)

# --- the certificate authority --------------------------------------------------------

# Where the CA keys live (certificates/keys.py): encrypted PKCS#8 in the database, or a PKCS#11 token.
KEY_BACKEND = env_str("CERTPORTAL_KEY_BACKEND", "encrypted")
if KEY_BACKEND not in ("encrypted", "pkcs11"):
    raise ImproperlyConfigured(f"CERTPORTAL_KEY_BACKEND must be encrypted or pkcs11, not {KEY_BACKEND!r}")


def _ca_passphrase(name: str, debug_default: str | None) -> str | None:
    value = env_str(name)
    if value is None:
        return debug_default if DEBUG else None
    if len(value) < 16:
        raise ImproperlyConfigured(f"{name} must be at least 16 characters long")
    return value


# The issuing key's secret, which every web, worker and beat process needs (encrypted backend).
ISSUING_CA_PASSPHRASE = _ca_passphrase("CERTPORTAL_ISSUING_CA_PASSPHRASE", "certportal-development-issuing-passphrase")
# The root key's secret: given only to `init_ca`, `sign_root_crl` and `rewrap_ca_keys`, never to a service.
ROOT_CA_PASSPHRASE = _ca_passphrase("CERTPORTAL_ROOT_CA_PASSPHRASE", None)
# The single passphrase of earlier versions: read only so that `rewrap_ca_keys` can open the old keys.
LEGACY_CA_PASSPHRASE = env_str("CERTPORTAL_CA_PASSPHRASE")
if KEY_BACKEND == "encrypted" and not ISSUING_CA_PASSPHRASE:
    if LEGACY_CA_PASSPHRASE:
        raise ImproperlyConfigured(
            "CERTPORTAL_CA_PASSPHRASE is replaced by CERTPORTAL_ISSUING_CA_PASSPHRASE and "
            "CERTPORTAL_ROOT_CA_PASSPHRASE (two different secrets): set them, run `manage.py rewrap_ca_keys` once, "
            "then remove CERTPORTAL_CA_PASSPHRASE (deploy/README.md, key ceremony)"
        )
    raise ImproperlyConfigured("CERTPORTAL_ISSUING_CA_PASSPHRASE is required when CERTPORTAL_DEBUG is off")
if ROOT_CA_PASSPHRASE is not None and ROOT_CA_PASSPHRASE == ISSUING_CA_PASSPHRASE:
    raise ImproperlyConfigured(
        "CERTPORTAL_ROOT_CA_PASSPHRASE must differ from CERTPORTAL_ISSUING_CA_PASSPHRASE: the root key stays offline"
    )

# PKCS#11 (CERTPORTAL_KEY_BACKEND=pkcs11): the vendor's module, the token and its user PIN.
PKCS11_MODULE = env_str("CERTPORTAL_PKCS11_MODULE")
PKCS11_TOKEN_LABEL = env_str("CERTPORTAL_PKCS11_TOKEN_LABEL")
PKCS11_PIN = env_str("CERTPORTAL_PKCS11_PIN")
# Optional: a token (or HSM partition) of the root's own, whose PIN, like the root's passphrase, is
# given only to init_ca and sign_root_crl (or typed at their prompt) and never to a service.
PKCS11_ROOT_TOKEN_LABEL = env_str("CERTPORTAL_PKCS11_ROOT_TOKEN_LABEL")
PKCS11_ROOT_PIN = env_str("CERTPORTAL_PKCS11_ROOT_PIN")
if PKCS11_ROOT_TOKEN_LABEL is not None and PKCS11_ROOT_TOKEN_LABEL == PKCS11_TOKEN_LABEL:
    raise ImproperlyConfigured(
        "CERTPORTAL_PKCS11_ROOT_TOKEN_LABEL must name another token than CERTPORTAL_PKCS11_TOKEN_LABEL, or be unset"
    )
if PKCS11_ROOT_PIN is not None and PKCS11_ROOT_TOKEN_LABEL is None:
    raise ImproperlyConfigured("CERTPORTAL_PKCS11_ROOT_PIN is the PIN of CERTPORTAL_PKCS11_ROOT_TOKEN_LABEL: set both")
if KEY_BACKEND == "pkcs11":
    for _name, _value in (
        ("CERTPORTAL_PKCS11_MODULE", PKCS11_MODULE), ("CERTPORTAL_PKCS11_TOKEN_LABEL", PKCS11_TOKEN_LABEL),
        ("CERTPORTAL_PKCS11_PIN", PKCS11_PIN),
    ):
        if not _value:
            raise ImproperlyConfigured(f"{_name} is required when CERTPORTAL_KEY_BACKEND is pkcs11")
    if not Path(PKCS11_MODULE).is_file():
        raise ImproperlyConfigured(
            f"CERTPORTAL_PKCS11_MODULE must name the token's PKCS#11 library, not {PKCS11_MODULE!r}"
        )

# badkeys' blocklist of compromised keys (Debian CVE-2008-0166 and others), installed by
# `badkeys --update-bl` on a connected machine (deploy/README.md, Weak keys); the portal never
# downloads it. Unset: badkeys' own cache, where that command writes it ($XDG_CACHE_HOME/badkeys,
# else ~/.cache/badkeys), if it is there. The arithmetic weak-key checks need no file.
WEAK_KEY_BLOCKLIST = env_str("CERTPORTAL_WEAK_KEY_BLOCKLIST")
if WEAK_KEY_BLOCKLIST is None:
    _badkeys_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "badkeys" / "blocklist.dat"
    WEAK_KEY_BLOCKLIST = str(_badkeys_cache) if _badkeys_cache.is_file() else None
if WEAK_KEY_BLOCKLIST is not None:
    _blocklist_path = Path(WEAK_KEY_BLOCKLIST)
    if not _blocklist_path.is_file() or _blocklist_path.stat().st_size % 16 or not _blocklist_path.stat().st_size:
        raise ImproperlyConfigured(
            f"CERTPORTAL_WEAK_KEY_BLOCKLIST must name badkeys' blocklist.dat (see deploy/README.md), "
            f"not {WEAK_KEY_BLOCKLIST!r}"
        )

CA_ORGANIZATION = env_str("CERTPORTAL_CA_ORGANIZATION", "Certportal Demo Bank")
# A client certificate is valid one year from issuance; shorter only for a bank's own policy.
CERTIFICATE_VALIDITY_MONTHS = env_int("CERTPORTAL_CERTIFICATE_VALIDITY_MONTHS", 12, minimum=1, maximum=12)
# A certificate issued but never used holds the ID's issuance slot this long (double submits).
PENDING_CERTIFICATE_HOLD_MINUTES = env_int("CERTPORTAL_PENDING_HOLD_MINUTES", 10, minimum=1, maximum=1440)
# The certificate policy every client certificate names. The default is a placeholder under IANA's
# enterprise number for documentation (32473, RFC 5612); a bank sets the OID under its own arc
# (1.3.6.1.4.1.<its PEN>....) that its certificate policy document names.
CERTIFICATE_POLICY_OID = env_str("CERTPORTAL_CERTIFICATE_POLICY_OID", "1.3.6.1.4.1.32473.1.1")
if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", CERTIFICATE_POLICY_OID) or (
    CERTIFICATE_POLICY_OID[0] in "01" and int(CERTIFICATE_POLICY_OID.split(".")[1]) > 39
):
    raise ImproperlyConfigured(
        f"CERTPORTAL_CERTIFICATE_POLICY_OID must be a dotted OID such as 1.3.6.1.4.1.99999.1.1, "
        f"not {CERTIFICATE_POLICY_OID!r}"
    )
# OCSP answers are valid (nextUpdate) this long: also how long nginx's ssl_ocsp_cache keeps one,
# so the longest a revoked certificate can still pass nginx's handshake.
OCSP_VALIDITY_MINUTES = env_int("CERTPORTAL_OCSP_VALIDITY_MINUTES", 5, minimum=1, maximum=1440)
# The delegated OCSP responder certificate: short-lived (it carries id-pkix-ocsp-nocheck, so it
# cannot be revoked in practice), renewed when less than a third of its lifetime is left.
OCSP_RESPONDER_VALIDITY_DAYS = env_int("CERTPORTAL_OCSP_RESPONDER_VALIDITY_DAYS", 30, minimum=3, maximum=90)
CRL_VALIDITY_HOURS = env_int("CERTPORTAL_CRL_VALIDITY_HOURS", 24, minimum=1, maximum=168)
# The CRL is re-signed when its nextUpdate is closer than this.
CRL_REFRESH_MARGIN_HOURS = env_int("CERTPORTAL_CRL_REFRESH_MARGIN_HOURS", 6, minimum=1, maximum=72)
if CRL_REFRESH_MARGIN_HOURS >= CRL_VALIDITY_HOURS:
    # A CRL would be due as soon as it is signed: every anonymous GET /pki/crl would sign another.
    raise ImproperlyConfigured(
        f"CERTPORTAL_CRL_REFRESH_MARGIN_HOURS ({CRL_REFRESH_MARGIN_HOURS}) must be smaller than "
        f"CERTPORTAL_CRL_VALIDITY_HOURS ({CRL_VALIDITY_HOURS})"
    )
RENEWAL_WINDOW_DAYS = 30
REMINDER_THRESHOLDS_DAYS = (30, 10)
# Contract administrators get one e-mail a day listing their contract's IDs that must renew.
ADMIN_DIGEST_ENABLED = env_bool("CERTPORTAL_ADMIN_DIGEST", True)
# A reminder whose provider keeps failing is retried with exponential backoff (base doubling up to
# the cap) and given up, as failed, only this long after it was recorded: a provider down for a day
# still delivers.
REMINDER_RETRY_BASE_SECONDS = env_int("CERTPORTAL_REMINDER_RETRY_BASE_SECONDS", 60, minimum=1, maximum=3600)
REMINDER_RETRY_MAX_SECONDS = env_int("CERTPORTAL_REMINDER_RETRY_MAX_SECONDS", 3600, minimum=1, maximum=86400)
REMINDER_GIVE_UP_HOURS = env_int("CERTPORTAL_REMINDER_GIVE_UP_HOURS", 72, minimum=1, maximum=720)
# A reminder left "sending" this long belongs to a worker that died mid-send: it is sent again (once).
REMINDER_SENDING_LEASE_SECONDS = env_int("CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS", 600, minimum=1, maximum=86400)
# After a send whose outcome is unknown (the provider did not answer in time), wait this long for its
# answer (a tracking event) before the one more e-mail that may duplicate it.
REMINDER_UNCERTAIN_HOLD_SECONDS = env_int(
    "CERTPORTAL_REMINDER_UNCERTAIN_HOLD_SECONDS", 1800, minimum=1, maximum=86400
)
# The sweep runs this often and re-queues a reminder due but unclaimed for longer than the second
# figure (its task was lost with the broker or a dead worker): a fault is repaired within minutes.
REMINDER_SWEEP_SECONDS = env_int("CERTPORTAL_REMINDER_SWEEP_SECONDS", 300, minimum=1, maximum=3600)
REMINDER_REQUEUE_AFTER_SECONDS = env_int("CERTPORTAL_REMINDER_REQUEUE_AFTER_SECONDS", 300, minimum=1, maximum=86400)
# A reminder still owed whose attempts have all failed this long is logged at ERROR (once an hour).
REMINDER_ALERT_AFTER_MINUTES = env_int("CERTPORTAL_REMINDER_ALERT_AFTER_MINUTES", 60, minimum=1, maximum=10080)

# --- e-mail ---------------------------------------------------------------------------

EMAIL_BACKEND = env_str("CERTPORTAL_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", EMAIL_BACKEND):
    raise ImproperlyConfigured(f"CERTPORTAL_EMAIL_BACKEND must be a dotted Python path, not {EMAIL_BACKEND!r}")
EMAIL_FILE_PATH = env_str("CERTPORTAL_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("CERTPORTAL_FROM_EMAIL", "certportal@bank.example")
if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", parseaddr(DEFAULT_FROM_EMAIL)[1]):
    raise ImproperlyConfigured(f"CERTPORTAL_FROM_EMAIL must be an e-mail address, not {DEFAULT_FROM_EMAIL!r}")
# anymail's own settings, from ANYMAIL_<NAME> variables (the provider's token, its API URL ...),
# each parsed to the type anymail expects: a string like "10" or "false" reaching anymail would
# break every send (requests refuses a string timeout) or mean the opposite (a non-empty string is true).
ANYMAIL_SWITCHES = ("IGNORE_RECIPIENT_STATUS", "IGNORE_UNSUPPORTED_FEATURES", "DEBUG_API_REQUESTS")
_ANYMAIL_BOOLEAN_SUFFIXES = ANYMAIL_SWITCHES + ("TRACK_CLICKS", "TRACK_OPENS", "TRACK_OPEN", "AMP")
_ANYMAIL_INTEGER_SUFFIXES = ("BATCH_SIZE", "MAX_RETRIES", "PORT")
_ANYMAIL_JSON_SUFFIXES = ("SEND_DEFAULTS",)


def env_timeout(name: str) -> float | tuple[float, float]:
    """Seconds, or "connect,read" seconds, as requests takes them."""
    value = os.environ[name]
    try:
        parts = tuple(float(part) for part in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) not in (1, 2) or not all(0 < part <= 600 for part in parts):
        raise ImproperlyConfigured(
            f"{name} must be seconds (0 < s <= 600) or connect,read seconds like 3.05,27, not {value!r}"
        )
    return parts[0] if len(parts) == 1 else parts


def env_json_object(name: str) -> dict:
    import json

    try:
        parsed = json.loads(os.environ[name])
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, not {os.environ[name]!r}")
    return parsed


def anymail_setting(name: str) -> object:
    key = name[len("ANYMAIL_"):]
    if key == "REQUESTS_TIMEOUT" or key.endswith("_REQUESTS_TIMEOUT"):
        return env_timeout(name)
    if key.endswith(_ANYMAIL_BOOLEAN_SUFFIXES):
        return env_bool(name, False)
    if key.endswith(_ANYMAIL_INTEGER_SUFFIXES):
        return env_int(name, 0, minimum=0, maximum=1_000_000)
    if key.endswith(_ANYMAIL_JSON_SUFFIXES):
        return env_json_object(name)
    return os.environ[name]  # tokens, keys, URLs, the webhook secret: strings


ANYMAIL = {
    key[len("ANYMAIL_"):]: anymail_setting(key)
    for key, value in sorted(os.environ.items())
    if key.startswith("ANYMAIL_") and value
}
# What a send waits for the provider's answer; past it the outcome is uncertain (the e-mail may have gone).
_requests_timeout = ANYMAIL.get("REQUESTS_TIMEOUT", 30.0)
_timeouts = _requests_timeout if isinstance(_requests_timeout, tuple) else (_requests_timeout,)
ANYMAIL_READ_TIMEOUT_SECONDS = _timeouts[-1]
if EMAIL_BACKEND.startswith("anymail.") and sum(_timeouts) >= REMINDER_SENDING_LEASE_SECONDS:
    # A send still waiting for the provider would be taken for a dead worker's and sent again.
    raise ImproperlyConfigured(
        f"CERTPORTAL_REMINDER_SENDING_LEASE_SECONDS ({REMINDER_SENDING_LEASE_SECONDS}) must be longer than "
        f"ANYMAIL_REQUESTS_TIMEOUT ({_requests_timeout})"
    )

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if urlsplit(CELERY_BROKER_URL).scheme not in ("filesystem", "redis", "rediss", "amqp", "memory"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL must be filesystem://, redis:// or amqp://, not {CELERY_BROKER_URL!r}"
    )
if CELERY_BROKER_URL.startswith("filesystem"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    for _folder in (_queue_dir, VAR_DIR / "celery" / "processed", VAR_DIR / "celery" / "control"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
else:
    # Redis hands an unacknowledged message to another worker after this long: the task of a worker
    # that died comes back when its sending lease ends, not hours later. A retry never waits in a
    # worker longer than half of it (the task re-schedules itself until due), so none is taken for lost.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": REMINDER_SENDING_LEASE_SECONDS}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# One queue name per deployment (or per test run) when several share a Redis server.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
(VAR_DIR / "celery").mkdir(parents=True, exist_ok=True)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
REMINDER_TIME = env_time("CERTPORTAL_REMINDER_TIME", time(9, 0))
CELERY_BEAT_SCHEDULE = {
    "send-expiry-reminders": {
        "task": "notices.tasks.send_expiry_reminders",
        "schedule": crontab(hour=REMINDER_TIME.hour, minute=REMINDER_TIME.minute),
    },
    "sweep-reminders": {
        "task": "notices.tasks.sweep_reminders",
        "schedule": float(REMINDER_SWEEP_SECONDS),
    },
    "refresh-crl": {
        "task": "certificates.tasks.refresh_crl",
        "schedule": crontab(minute=0),
    },
    "renew-ocsp-responder": {
        "task": "certificates.tasks.renew_ocsp_responder",
        "schedule": crontab(minute=30),
    },
}

# --- logging --------------------------------------------------------------------------

LOG_LEVEL = env_str("CERTPORTAL_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"CERTPORTAL_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
