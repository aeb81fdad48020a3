"""No input makes a POST endpoint answer 500: generated bodies and content types at every one (hypothesis).

Each endpoint is tried anonymously and with the session it serves (a customer's certificate-bound
session, an operator's, an obtain in progress), so the generated bodies reach the code behind the
login. Hand-picked bodies run first at each: JSON nested far deeper than the parser recurses, a
body over DATA_UPLOAD_MAX_MEMORY_SIZE, malformed multipart, bytes that are not UTF-8. The
"certportal" profile is derandomized (the same examples on every run, as CI needs); set
HYPOTHESIS_PROFILE=explore for a longer, random search.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote_from_bytes

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import User
from certificates.enrollment import OBTAIN_SESSION_KEY
from certificates.models import OneTimeCode
from tests.support.clients import CertificateClient, issue_for, signed_in
from tests.support.esp_standin import WEBHOOK_SECRET

hypothesis_settings.register_profile(
    "certportal", derandomize=True, database=None, deadline=None, max_examples=12, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.register_profile("explore", parent=hypothesis_settings.get_profile("certportal"),
                                     derandomize=False, max_examples=300)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "certportal"))

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("behind_proxy", "generous_budgets")]

FIELD_NAMES = [
    "login_id", "password", "code", "csr", "language", "next", "current_password", "new_password",
    "new_password_again", "email", "reason", "action", "_selected_action", "select_across", "index", "post",
    "username", "state", "role", "contract", "is_staff", "_save", "_continue", "csrfmiddlewaretoken",
]
# Values the views act on, so that generated forms reach past "this field is required".
VALUES = ["unlock", "suspend", "resume", "revoke", "delete_selected", "resend", "key_compromise", "en", "ja", "yes",
          "0", "1", "-1", "99999999999999999999999", "abc", "\x00", "/", "//evil.example/", "bob-user", "alice-admin"]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=shift_jis",
    "application/x-www-form-urlencoded; charset=no-such-charset", "multipart/form-data; boundary=BOUNDARY",
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=BOUNDARY",
    "application/json", "application/json; charset=utf-16", "text/plain", "application/octet-stream", "",
]
DEEP_JSON = b"[" * 1_200 + b"]" * 1_200  # past the parser's recursion limit (about 1,000)
DEEP_OBJECT = b'{"csr":' * 1_200 + b"1" + b"}" * 1_200
HUGE = b"login_id=" + b"a" * (3 * 1024 * 1024)
NOT_UTF8 = "ログイン".encode("shift_jis") + b"\xff\xfe\x80"
BROKEN_MULTIPART = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"login_id\"\r\n\r\nabc\r\n"
                    b"--BOUNDARY\r\nContent-Disposition: form-data; name=\xff\r\n\r\n")


@pytest.fixture
def generous_budgets(settings):
    """Budgets no example exhausts, and the webhook secret the authenticated examples carry."""
    # Every example comes from one address: the attempt budgets must not answer all of them with 429.
    settings.ADDRESS_ATTEMPT_LIMIT = settings.OBTAIN_ID_ATTEMPT_LIMIT = 100_000
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}


# --- generated bodies --------------------------------------------------------------------------

text = st.text(max_size=40)
raw = st.binary(max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELD_NAMES) | text, children,
                                                                      max_size=4),
    max_leaves=12,
)


@st.composite
def form_bodies(draw) -> bytes:
    """url-encoded fields the views read, with any text or bytes, some of them percent-encoded badly."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES) | text, st.sampled_from(VALUES) | text | raw),
                          max_size=6))
    encoded = "&".join(
        f"{quote_from_bytes(name.encode('utf-8', 'surrogatepass'))}="
        f"{quote_from_bytes(value if isinstance(value, bytes) else value.encode('utf-8', 'surrogatepass'))}"
        for name, value in pairs
    ).encode()
    return encoded + draw(st.sampled_from([b"", b"&%", b"&%zz", b"=&&=", b"&x=%ff%fe"]))


@st.composite
def multipart_bodies(draw) -> bytes:
    parts = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES) | text, raw), max_size=4))
    body = b"".join(
        b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"" + name.encode("utf-8", "surrogatepass") + b"\""
        + draw(st.sampled_from([b"", b"; filename=\"x.csr\"", b"; filename*=utf-8''%ff"]))
        + b"\r\n\r\n" + value + b"\r\n"
        for name, value in parts
    )
    return body + draw(st.sampled_from([b"--BOUNDARY--\r\n", b"", b"--BOUNDARY\r\n", b"--BOUND"]))


bodies = st.one_of(
    form_bodies(),
    multipart_bodies(),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 3_000).map(lambda depth: b"[" * depth + b"]" * depth),
    raw,
    text.map(lambda value: value.encode("utf-8", "surrogatepass")),
)


# --- the endpoints and the sessions they serve -------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: Callable[[dict], str]
    session: str  # "customer", "operator", "obtain", "obtain_verified" or "" (anonymous only)
    headers: tuple[tuple[str, str], ...] = ()


WEBHOOK_AUTH = (("HTTP_AUTHORIZATION", "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()),)
ENDPOINTS = [
    Endpoint("login", lambda ids: "/", "customer"),
    Endpoint("logout", lambda ids: "/logout/", "customer"),
    Endpoint("language switch", lambda ids: "/i18n/setlang/", "customer"),
    Endpoint("password change", lambda ids: "/password/", "customer"),
    Endpoint("renewal issue (JSON)", lambda ids: "/certificate/renew/issue/", "customer"),
    Endpoint("obtain: ID and password", lambda ids: "/certificate/obtain/", "obtain"),
    Endpoint("obtain: code", lambda ids: "/certificate/obtain/code/", "obtain"),
    Endpoint("obtain issue (JSON)", lambda ids: "/certificate/obtain/issue/", "obtain_verified"),
    Endpoint("delivery webhook", lambda ids: "/anymail/postmark/tracking/", "", WEBHOOK_AUTH),
    Endpoint("operators: login", lambda ids: "/operator/login/", "operator"),
    Endpoint("operators: ID list and actions", lambda ids: "/operator/accounts/user/", "operator"),
    Endpoint("operators: add ID", lambda ids: "/operator/accounts/user/add/", "operator"),
    Endpoint("operators: change ID", lambda ids: f"/operator/accounts/user/{ids['bob']}/change/", "operator"),
    Endpoint("operators: revoke certificates",
             lambda ids: "/operator/certificates/certificate/", "operator"),
    Endpoint("contract admin: user ID list and actions", lambda ids: "/manage/accounts/userid/", "customer"),
    Endpoint("contract admin: add user ID", lambda ids: "/manage/accounts/userid/add/", "customer"),
    Endpoint("contract admin: change user ID", lambda ids: f"/manage/accounts/userid/{ids['bob']}/change/",
             "customer"),
    Endpoint("contract admin: suspend", lambda ids: f"/manage/accounts/userid/{ids['bob']}/suspend/", "customer"),
    Endpoint("contract admin: reset password",
             lambda ids: f"/manage/accounts/userid/{ids['bob']}/reset-password/", "customer"),
    Endpoint("contract admin: revoke",
             lambda ids: f"/manage/certificates/certificate/{ids['bobs_certificate']}/revoke/", "customer"),
]


@pytest.fixture
def portal(ca, alice, bob, olivia) -> dict:
    """The IDs and objects the endpoints' URLs name, and a way to open each kind of session."""
    alices_certificate, _key = issue_for(alice)
    bobs_certificate, _key = issue_for(bob)
    return {"alice": alice, "bob": bob.pk, "olivia": olivia, "alices_certificate": alices_certificate,
            "bobs_certificate": bobs_certificate.pk}


def browser(kind: str, portal: dict) -> Client:
    """A new browser, anonymous or with the session of `kind`; made anew for each example."""
    if kind == "customer":
        return signed_in(portal["alice"], portal["alices_certificate"])
    client = CertificateClient(None)
    if kind == "operator":
        client.force_login(portal["olivia"])
    elif kind.startswith("obtain"):
        bob = User.objects.get(pk=portal["bob"])
        # A code row as certificates.otp writes it (its value is never entered right here).
        code = OneTimeCode.objects.create(user=bob, purpose=OneTimeCode.Purpose.OBTAIN, salt="0" * 32,
                                          code_hash="0" * 64, created_at=timezone.now(),
                                          expires_at=timezone.now() + timedelta(minutes=10))
        session = client.session
        session[OBTAIN_SESSION_KEY] = {"user": bob.pk, "code": code.pk,
                                       "verified_at": time.time() if kind == "obtain_verified" else None}
        session.save()
    return client


def post(endpoint: Endpoint, portal: dict, *, logged_in: bool, body: bytes, content_type: str):
    client = browser(endpoint.session if logged_in else "", portal)
    return client.generic("POST", endpoint.path(portal), data=body, content_type=content_type,
                          **dict(endpoint.headers))


CASES = [(endpoint, logged_in) for endpoint in ENDPOINTS for logged_in in (False, True)
         if endpoint.session or not logged_in]


@pytest.mark.parametrize(("endpoint", "logged_in"), CASES,
                         ids=[f"{endpoint.name}, {'with its session' if logged_in else 'anonymous'}"
                              for endpoint, logged_in in CASES])
@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
@example(body=DEEP_JSON, content_type="application/json")
@example(body=DEEP_OBJECT, content_type="application/json")
@example(body=HUGE, content_type="application/x-www-form-urlencoded")
@example(body=HUGE, content_type="application/json")
@example(body=NOT_UTF8, content_type="application/x-www-form-urlencoded; charset=utf-8")
@example(body=NOT_UTF8, content_type="application/json")
@example(body=BROKEN_MULTIPART, content_type="multipart/form-data; boundary=BOUNDARY")
@example(body=b"", content_type="multipart/form-data")
@example(body=b"action=unlock&_selected_action=abc&index=0", content_type="application/x-www-form-urlencoded")
@example(body=b"action=delete_selected&_selected_action=99999999999999999999999&post=yes",
         content_type="application/x-www-form-urlencoded")
def test_no_body_or_content_type_gets_a_500(portal, endpoint, logged_in, body, content_type):
    response = post(endpoint, portal, logged_in=logged_in, body=body, content_type=content_type)
    assert response.status_code < 500, (endpoint.name, response.status_code, body[:200], content_type)


def test_the_upload_limit_is_one_mebibyte_as_nginx_accepts():
    assert django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1024 * 1024


FORM_PAGES = [endpoint for endpoint in ENDPOINTS if endpoint.name in (
    "login", "password change", "obtain: ID and password", "obtain: code")]
JSON_ENDPOINTS = [endpoint for endpoint in ENDPOINTS if "(JSON)" in endpoint.name]


@pytest.mark.parametrize("endpoint", FORM_PAGES, ids=[endpoint.name for endpoint in FORM_PAGES])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_the_portals_form_pages_refuse_what_is_not_a_form_with_415(portal, endpoint, content_type):
    response = post(endpoint, portal, logged_in=True, body=b'{"login_id": "alice-admin"}', content_type=content_type)
    assert response.status_code == 415


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=[endpoint.name for endpoint in JSON_ENDPOINTS])
@pytest.mark.parametrize(("body", "content_type", "status"), [
    (DEEP_JSON, "application/json", 400),
    (DEEP_OBJECT, "application/json", 400),
    (NOT_UTF8, "application/json", 400),
    (b'["csr"]', "application/json", 400),
    (b'{"csr": "' + b"A" * 70_000 + b'"}', "application/json", 413),
    (HUGE, "application/json", 413),
    (b"csr=abc", "application/x-www-form-urlencoded", 415),
], ids=["deep array", "deep object", "not UTF-8", "not an object", "over 64 KiB", "over 1 MiB", "a form"])
def test_the_enrollment_json_endpoints_say_what_is_wrong(portal, endpoint, body, content_type, status):
    response = post(endpoint, portal, logged_in=True, body=body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"]
