"""Who reaches what: every URL of the portal and of both admin sites, for every persona.

The URLs are not listed by hand: they are read from the URL resolver, recursively, so a URL
added tomorrow is requested too, and the test fails until its row is added to EXPECTED below.
Path parameters are filled with objects of contract B (dave, a user ID of contract B, his
certificate, contract B's audit entries...), so each row answers "can this persona reach
another contract's object through this URL?".

Personas: anonymous (no session, no certificate), bob (user ID of contract A), alice
(administrator of contract A), charlie (administrator of contract B, so the objects are his),
olivia (a bank operator, signed in to the operators' site with her operator certificate and password).
Customers' sessions are opened as the certificate login opens them (certificate presented
through the trusted proxy, session bound to it).

Cells of EXPECTED:
  200 / 400 / 403 / 404 / 405   that status code
  login                         302 to the portal's certificate login ("/")
  oplogin                       302 to the operators' login (/operator/login/)
  ->/path/                      302 to that path (a number in it written <id>)
  ->url-name                    302 to the path of that URL name
  ->change/                     302 to the requested URL + change/ (an admin site's bare object URL)
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from fnmatch import fnmatch
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern

from accounts import services as id_services
from accounts.models import AuditEntry, Contract, JobRun, User
from certificates.crl import publish_crl
from certificates.models import Certificate, CertificateAuthority, RevocationList
from notices.models import Notice, Reminder
from tests.support.clients import CertificateClient, issue_for, issue_for_operator, operator_signed_in, signed_in

PERSONAS = ("anonymous", "bob", "alice", "charlie", "olivia")

# Rows: URL key (namespace:name, with [app_label] for an app index), then one cell per persona.
# Reading guide:
#   portal pages a customer reaches after login: login for anonymous, 200 for the customers;
#     olivia (an operator, no certificate) is not a customer: login page again.
#   contract_admin:* (/manage/): anonymous -> login; bob and olivia 403; alice 404 on contract B's
#     objects and 200 on her own lists; charlie 200 on his own contract's objects.
#   admin:* (/operator/): only olivia; every customer is sent to the operators' login, where the
#     password-only form refuses anyone who is not staff.
EXPECTED = """
# key                                                          anonymous bob       alice     charlie   olivia

# The portal: public files, the login (also the front page), obtaining and renewing certificates
set_language                                                   login     login     login     login     login
crl                                                            200       200       200       200       200
root-crl                                                       200       200       200       200       200
ca-chain                                                       200       200       200       200       200
issuing-ca                                                     200       200       200       200       200
ocsp                                                           200       200       200       200       200
ocsp-get                                                       200       200       200       200       200
renewal-prepare                                                login     200       200       200       404
renewal-start                                                  login     200       200       200       404
renewal-issue                                                  login     405       405       405       405
renewal-done                                                   login     404       404       404       404
obtain-start                                                   200       200       200       200       200
obtain-code ->obtain-start ->obtain-start ->obtain-start ->obtain-start ->obtain-start
obtain-enroll ->obtain-start ->obtain-start ->obtain-start ->obtain-start ->obtain-start
obtain-issue                                                   405       405       405       405       405
obtain-done                                                    404       404       404       404       404

# The bank operators' site (/operator/): olivia only; customers are sent to its password login,
# which refuses anyone who is not staff. Bank-wide models (CA, CRL, groups) take their only object.
admin:index                                                    oplogin   oplogin   oplogin   oplogin   200
admin:login                                                    200       200       200       200       ->/operator/
admin:logout ->/operator/ ->/operator/ ->/operator/ ->/operator/ 405
admin:password_change                                          oplogin   oplogin   oplogin   oplogin   200
admin:password_change_done                                     oplogin   oplogin   oplogin   oplogin   200
admin:autocomplete                                             oplogin   oplogin   oplogin   oplogin   403
admin:jsi18n                                                   oplogin   oplogin   oplogin   oplogin   200
admin:view_on_site                                             oplogin   oplogin   oplogin   oplogin   404
admin:dashboard                                                oplogin   oplogin   oplogin   oplogin   200
admin:export_ids                                               oplogin   oplogin   oplogin   oplogin   200
admin:auth_group_changelist                                    oplogin   oplogin   oplogin   oplogin   200
admin:auth_group_add                                           oplogin   oplogin   oplogin   oplogin   200
admin:auth_group_history                                       oplogin   oplogin   oplogin   oplogin   200
admin:auth_group_delete                                        oplogin   oplogin   oplogin   oplogin   200
admin:auth_group_change                                        oplogin   oplogin   oplogin   oplogin   200
/operator/auth/group/<path:object_id>/                         oplogin   oplogin   oplogin   oplogin   ->change/
admin:accounts_contract_changelist                             oplogin   oplogin   oplogin   oplogin   200
admin:accounts_contract_add                                    oplogin   oplogin   oplogin   oplogin   200
admin:accounts_contract_history                                oplogin   oplogin   oplogin   oplogin   200
admin:accounts_contract_delete                                 oplogin   oplogin   oplogin   oplogin   200
admin:accounts_contract_change                                 oplogin   oplogin   oplogin   oplogin   200
/operator/accounts/contract/<path:object_id>/                  oplogin   oplogin   oplogin   oplogin   ->change/
admin:accounts_auditentry_changelist                           oplogin   oplogin   oplogin   oplogin   200
admin:accounts_auditentry_add                                  oplogin   oplogin   oplogin   oplogin   403
admin:accounts_auditentry_history                              oplogin   oplogin   oplogin   oplogin   200
admin:accounts_auditentry_delete                               oplogin   oplogin   oplogin   oplogin   403
admin:accounts_auditentry_change                               oplogin   oplogin   oplogin   oplogin   200
/operator/accounts/auditentry/<path:object_id>/                oplogin   oplogin   oplogin   oplogin   ->change/
admin:accounts_jobrun_changelist                               oplogin   oplogin   oplogin   oplogin   200
admin:accounts_jobrun_add                                      oplogin   oplogin   oplogin   oplogin   403
admin:accounts_jobrun_history                                  oplogin   oplogin   oplogin   oplogin   200
admin:accounts_jobrun_delete                                   oplogin   oplogin   oplogin   oplogin   403
admin:accounts_jobrun_change                                   oplogin   oplogin   oplogin   oplogin   200
/operator/accounts/jobrun/<path:object_id>/                    oplogin   oplogin   oplogin   oplogin   ->change/
admin:auth_user_password_change                                oplogin   oplogin   oplogin   oplogin   200
admin:accounts_user_changelist                                 oplogin   oplogin   oplogin   oplogin   200
admin:accounts_user_add                                        oplogin   oplogin   oplogin   oplogin   200
admin:accounts_user_history                                    oplogin   oplogin   oplogin   oplogin   200
admin:accounts_user_delete                                     oplogin   oplogin   oplogin   oplogin   200
admin:accounts_user_change                                     oplogin   oplogin   oplogin   oplogin   200
/operator/accounts/user/<path:object_id>/                      oplogin   oplogin   oplogin   oplogin   ->change/
admin:certificates_certificate_changelist                      oplogin   oplogin   oplogin   oplogin   200
admin:certificates_certificate_add                             oplogin   oplogin   oplogin   oplogin   403
admin:certificates_certificate_history                         oplogin   oplogin   oplogin   oplogin   200
admin:certificates_certificate_delete                          oplogin   oplogin   oplogin   oplogin   403
admin:certificates_certificate_change                          oplogin   oplogin   oplogin   oplogin   200
/operator/certificates/certificate/<path:object_id>/           oplogin   oplogin   oplogin   oplogin   ->change/
admin:certificates_certificateauthority_changelist             oplogin   oplogin   oplogin   oplogin   200
admin:certificates_certificateauthority_add                    oplogin   oplogin   oplogin   oplogin   403
admin:certificates_certificateauthority_history                oplogin   oplogin   oplogin   oplogin   200
admin:certificates_certificateauthority_delete                 oplogin   oplogin   oplogin   oplogin   403
admin:certificates_certificateauthority_change                 oplogin   oplogin   oplogin   oplogin   200
/operator/certificates/certificateauthority/<path:object_id>/  oplogin   oplogin   oplogin   oplogin   ->change/
admin:certificates_revocationlist_changelist                   oplogin   oplogin   oplogin   oplogin   200
admin:certificates_revocationlist_add                          oplogin   oplogin   oplogin   oplogin   403
admin:certificates_revocationlist_history                      oplogin   oplogin   oplogin   oplogin   200
admin:certificates_revocationlist_delete                       oplogin   oplogin   oplogin   oplogin   403
admin:certificates_revocationlist_change                       oplogin   oplogin   oplogin   oplogin   200
/operator/certificates/revocationlist/<path:object_id>/        oplogin   oplogin   oplogin   oplogin   ->change/
admin:notices_notice_changelist                                oplogin   oplogin   oplogin   oplogin   200
admin:notices_notice_add                                       oplogin   oplogin   oplogin   oplogin   200
admin:notices_notice_history                                   oplogin   oplogin   oplogin   oplogin   200
admin:notices_notice_delete                                    oplogin   oplogin   oplogin   oplogin   200
admin:notices_notice_change                                    oplogin   oplogin   oplogin   oplogin   200
/operator/notices/notice/<path:object_id>/                     oplogin   oplogin   oplogin   oplogin   ->change/
admin:notices_reminder_changelist                              oplogin   oplogin   oplogin   oplogin   200
admin:notices_reminder_add                                     oplogin   oplogin   oplogin   oplogin   403
admin:notices_reminder_history                                 oplogin   oplogin   oplogin   oplogin   200
admin:notices_reminder_delete                                  oplogin   oplogin   oplogin   oplogin   403
admin:notices_reminder_change                                  oplogin   oplogin   oplogin   oplogin   200
/operator/notices/reminder/<path:object_id>/                   oplogin   oplogin   oplogin   oplogin   ->change/
admin:app_list[auth]                                           oplogin   oplogin   oplogin   oplogin   200
admin:app_list[accounts]                                       oplogin   oplogin   oplogin   oplogin   200
admin:app_list[certificates]                                   oplogin   oplogin   oplogin   oplogin   200
admin:app_list[notices]                                        oplogin   oplogin   oplogin   oplogin   200
/operator/(?P<url>.*)                                          oplogin   oplogin   oplogin   oplogin   404

# Prometheus: relayed by the (trusted) proxy without the internal listener's mark, nobody gets it
metrics                                                        404       404       404       404       404

# E-mail providers' webhooks (anymail): refused to everyone without ANYMAIL_WEBHOOK_SECRET
*_webhook                                                      403       403       403       403       403

# The contract administrators' site (/manage/). Object IDs are contract B's: charlie's own (200),
# never alice's (404). bob (a user ID) and olivia (an operator) get 403; no history, add or delete.
contract_admin:index                                           login     403       200       200       403
contract_admin:login                                           login     403       ->/manage/ ->/manage/ 403
contract_admin:logout                                          login     403       405       405       403
contract_admin:password_change                                 login     403       ->/password/ ->/password/ 403
contract_admin:password_change_done                            login     403       ->/password/ ->/password/ 403
contract_admin:autocomplete                                    login     403       403       403       403
contract_admin:jsi18n                                          login     403       200       200       403
contract_admin:accounts_userid_suspend                         login     403       404       200       403
contract_admin:accounts_userid_resume                          login     403       404       200       403
contract_admin:accounts_userid_unlock                          login     403       404       200       403
contract_admin:accounts_userid_reset_password                  login     403       404       200       403
contract_admin:accounts_userid_changelist                      login     403       200       200       403
contract_admin:accounts_userid_add                             login     403       200       200       403
contract_admin:accounts_userid_history                         login     403       404       404       403
contract_admin:accounts_userid_delete                          login     403       404       403       403
contract_admin:accounts_userid_change                          login     403       404       200       403
/manage/accounts/userid/<path:object_id>/                      login     403       ->change/ ->change/ 403
contract_admin:certificates_certificate_revoke                 login     403       404       200       403
contract_admin:certificates_certificate_changelist             login     403       200       200       403
contract_admin:certificates_certificate_add                    login     403       403       403       403
contract_admin:certificates_certificate_history                login     403       404       404       403
contract_admin:certificates_certificate_delete                 login     403       404       403       403
contract_admin:certificates_certificate_change                 login     403       404       200       403
/manage/certificates/certificate/<path:object_id>/             login     403       ->change/ ->change/ 403
contract_admin:accounts_auditentry_changelist                  login     403       200       200       403
contract_admin:accounts_auditentry_add                         login     403       403       403       403
contract_admin:accounts_auditentry_history                     login     403       404       404       403
contract_admin:accounts_auditentry_delete                      login     403       404       403       403
contract_admin:accounts_auditentry_change                      login     403       404       200       403
/manage/accounts/auditentry/<path:object_id>/                  login     403       ->change/ ->change/ 403
contract_admin:app_list[accounts]                              login     403       200       200       403
contract_admin:app_list[certificates]                          login     403       200       200       403
/manage/(?P<url>.*)                                            login     403       404       404       403

# The portal's own pages after login
password-change                                                login     200       200       200       200
important-notices                                              login     200       200       200       200
login                                                          200       ->/notices/ ->/notices/ ->/notices/ 200
logout                                                         405       405       405       405       405
"""


def expected_row(table: dict[str, dict[str, str]], key: str) -> dict[str, str] | None:
    """The row named `key`, else the first glob row (e.g. `*_webhook`) that matches it."""
    if key in table:
        return table[key]
    return next((row for pattern, row in table.items() if "*" in pattern and fnmatch(key, pattern)), None)


def _resolved(cell: str) -> str:
    """`->url-name` stands for `->` and the path of that URL name."""
    if cell.startswith("->") and not cell.startswith("->/") and cell != "->change/":
        return "->" + reverse(cell[2:])
    return cell


def parse_expected(text: str) -> dict[str, dict[str, str]]:
    table = {}
    for line in text.strip().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, *cells = line.split()
        assert len(cells) == len(PERSONAS), f"row {key!r} needs {len(PERSONAS)} cells"
        assert key not in table, f"row {key!r} appears twice"
        table[key] = {persona: _resolved(cell) for persona, cell in zip(PERSONAS, cells, strict=True)}
    return table


# --- the URLs, read from the resolver --------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str
    name: str | None  # namespace-qualified, for reverse()
    params: tuple[str, ...]
    fixed: dict  # parameters whose value the route itself dictates (an app index's app_label)
    prefix: str  # the literal path, for unnamed patterns
    callback: object


def _params(pattern) -> list[str]:
    if isinstance(pattern, RegexPattern):
        return list(pattern.regex.groupindex)
    return list(pattern.converters)


def _literal(pattern) -> str:
    return str(pattern).lstrip("^").rstrip("$")


def routes(resolver=None, namespaces=(), params=(), prefix="") -> list[Route]:
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        here = (*params, *_params(entry.pattern))
        if isinstance(entry, URLResolver):
            spaces = (*namespaces, entry.namespace) if entry.namespace else namespaces
            found += routes(entry, spaces, here, prefix + _literal(entry.pattern))
            continue
        assert isinstance(entry, URLPattern)
        name = ":".join((*namespaces, entry.name)) if entry.name else None
        alternatives = re.search(r"\(\?P<app_label>([^)]*)\)", str(entry.pattern))
        if alternatives:  # an admin site's app index: one URL per app it lists
            for label in alternatives.group(1).split("|"):
                found.append(Route(f"{name}[{label}]", name, here, {"app_label": label}, "", entry.callback))
        else:
            key = name or f"/{prefix}{_literal(entry.pattern)}"
            found.append(Route(key, name, here, {}, prefix, entry.callback))
    return found


def model_of(callback):
    """The model of an admin page, from the ModelAdmin its view is bound to."""
    view = callback
    while view is not None:
        model_admin = getattr(view, "model_admin", None) or getattr(view, "__self__", None)
        if getattr(model_admin, "model", None) is not None:
            return model_admin.model
        view = getattr(view, "__wrapped__", None)
    return None


# --- the world: contract A (alice, bob) and contract B (charlie, dave) -----------------------------


@pytest.fixture
def world(ca, behind_proxy, alice, bob, charlie, olivia, contract_b, dave, settings):
    # Without a secret the e-mail webhooks refuse everyone, whatever this machine's environment says.
    settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
    certificates = {user.login_id: issue_for(user)[0] for user in (alice, bob, charlie, dave)}
    certificates[olivia.login_id] = issue_for_operator(olivia)[0]
    id_services.suspend_id(user=dave, by=charlie)
    id_services.resume_id(user=dave, by=charlie)
    publish_crl()
    return {
        "contract_b": contract_b, "dave": dave, "charlie": charlie,
        "certificates": certificates, "personas": {"alice": alice, "bob": bob, "charlie": charlie, "olivia": olivia},
    }


def object_of_contract_b(model, world):
    """An object of contract B (or the bank's own, for bank-wide models) for each model with admin pages."""
    label = model._meta.label_lower
    dave = world["dave"]
    objects = {
        "accounts.user": lambda: dave,
        "accounts.userid": lambda: dave,
        "accounts.contract": lambda: world["contract_b"],
        "accounts.auditentry": lambda: AuditEntry.objects.filter(contract=world["contract_b"]).first(),
        "certificates.certificate": lambda: world["certificates"][dave.login_id],
        "certificates.certificateauthority": lambda: CertificateAuthority.objects.first(),
        "certificates.revocationlist": lambda: RevocationList.objects.first(),
        "accounts.jobrun": lambda: JobRun.objects.create(
            name="certificates.tasks.refresh_crl", started_at=dave.date_joined, finished_at=dave.date_joined),
        "auth.group": lambda: Group.objects.get_or_create(name="bank-operators")[0],
        "notices.notice": lambda: Notice.objects.get_or_create(
            title_ja="お知らせ", title_en="Notice", body_ja="本文", body_en="Body")[0],
        "notices.reminder": lambda: Reminder.objects.get_or_create(
            kind=Reminder.Kind.EXPIRY, recipient=dave, certificate=world["certificates"][dave.login_id],
            threshold_days=30, defaults={"run": uuid.uuid4()})[0],
    }
    if label not in objects:
        pytest.fail(f"no object for {label}: add one of contract B to object_of_contract_b()")
    obj = objects[label]()
    assert obj is not None, label
    return obj


def url_for(route: Route, world) -> str:
    dave = world["dave"]
    values = dict(route.fixed)
    for param in route.params:
        if param in values:
            continue
        if param == "object_id" and route.key.endswith("view_on_site"):
            values[param] = str(dave.pk)
        elif param in ("object_id", "id"):  # "id": Django's UserAdmin names its password page's parameter so
            model = model_of(route.callback)
            assert model is not None, f"{route.key}: cannot tell which model {param} is"
            values[param] = str(object_of_contract_b(model, world).pk)
        elif param == "content_type_id":
            values[param] = ContentType.objects.get_for_model(User).pk
        elif param == "serial":
            values[param] = world["certificates"][dave.login_id].serial_number
        elif param == "url":
            values[param] = "no-such-page/"
        elif param == "encoded":  # an OCSP request in base64: a malformed one is answered 200 too
            values[param] = "MAA="
        else:
            pytest.fail(f"{route.key}: no value for the path parameter {param!r}; add one to url_for()")
    if route.name is None:  # e.g. an admin site's catch-all, or its object-ID redirect
        literal = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route.key)
        return re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), literal)
    return reverse(route.name, kwargs=values)


# --- the clients ---------------------------------------------------------------------------------


def client_for(persona: str, world):
    if persona == "anonymous":
        return CertificateClient(None)
    user = world["personas"][persona]
    if persona == "olivia":
        return operator_signed_in(user, world["certificates"][user.login_id])
    return signed_in(user, world["certificates"][user.login_id])


def observed(response) -> str:
    if response.status_code in (301, 302, 303, 307, 308):
        path = urlsplit(response["Location"]).path
        if path == reverse("login"):
            return "login"
        if path == reverse("admin:login"):
            return "oplogin"
        if path == urlsplit(response.wsgi_request.path).path + "change/":
            return "->change/"
        return "->" + re.sub(r"/\d+/", "/<id>/", path)  # IDs differ between databases
    return str(response.status_code)


def body(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode(errors="replace")


# Nothing of contract B may appear in what contract A's people (or strangers) are shown.
CONTRACT_B_MARKERS = ("dave-user", "charlie-admin", "dave@beta.example", "Beta Industries", "3000001")


def test_every_url_answers_every_persona_as_the_table_says_and_leaks_nothing_of_contract_b(world):
    expected = parse_expected(EXPECTED)
    found = routes()
    keys = [route.key for route in found]
    unclassified = [key for key in keys if expected_row(expected, key) is None]
    stale = [
        pattern for pattern in expected
        if pattern not in keys and not ("*" in pattern and any(fnmatch(key, pattern) for key in keys))
    ]

    clients = {persona: client_for(persona, world) for persona in PERSONAS}
    observed_table, wrong, leaks = {}, [], []
    for route in found:
        url = url_for(route, world)
        row = {}
        for persona in PERSONAS:
            client = clients[persona]
            response = client.get(url)
            row[persona] = observed(response)
            if persona in ("anonymous", "bob", "alice"):
                text = body(response)
                leaks += [f"{persona} GET {url}: {marker}" for marker in CONTRACT_B_MARKERS if marker in text]
            if persona != "anonymous" and "_auth_user_id" not in client.session:
                clients[persona] = client_for(persona, world)  # that URL ended the session; start a new one
        observed_table[route.key] = row
        want = expected_row(expected, route.key)
        if want is not None and want != row:
            wrong.append(f"{route.key} ({url}): " + ", ".join(
                f"{persona} expected {want[persona]} got {row[persona]}" for persona in PERSONAS
                if want[persona] != row[persona]
            ))

    width = max(len(key) for key in keys) + 2
    table = "\n".join(key.ljust(width) + " ".join(row[p].ljust(8) for p in PERSONAS).rstrip()
                      for key, row in observed_table.items())
    problems = []
    if unclassified:
        problems.append("URLs with no row in EXPECTED (classify them):\n  " + "\n  ".join(unclassified))
    if stale:
        problems.append("rows of EXPECTED for URLs that no longer exist:\n  " + "\n  ".join(stale))
    if wrong:
        problems.append("cells that differ from EXPECTED:\n  " + "\n  ".join(wrong))
    if leaks:
        problems.append("contract B's data shown to others:\n  " + "\n  ".join(leaks))
    assert not problems, "\n\n".join(problems) + "\n\nobserved:\n" + table


def test_the_url_walk_finds_both_admin_sites_and_the_portal(db):
    keys = {route.key for route in routes()}
    assert {"login", "admin:index", "contract_admin:index", "contract_admin:accounts_userid_change",
            "admin:accounts_user_change", "password-change"} <= keys


def test_a_url_missing_from_the_table_is_reported(db):
    expected = parse_expected(EXPECTED.replace("crl ", "#crl "))
    assert "crl" in {route.key for route in routes()} - set(expected)


def test_the_contract_administrators_site_is_scoped_even_for_an_id_that_exists(world):
    """A sanity check of the fill: the object IDs used above are real, visible to their own administrator."""
    charlie = signed_in(world["charlie"], world["certificates"]["charlie-admin"])
    assert charlie.get(f"/manage/accounts/userid/{world['dave'].pk}/change/").status_code == 200
    assert Contract.objects.count() == 2 and Certificate.objects.count() == 5  # four customers' and olivia's
