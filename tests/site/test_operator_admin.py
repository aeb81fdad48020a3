"""The bank operators' Django admin at /operator/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography import x509

from accounts.models import AuditEntry, User
from certificates.models import Certificate, CertificateAction, RevocationList, RevocationReason
from certificates.services import issue_certificate, revoke_certificate, supersede_older_certificates
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db



NOW = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def get(client, url: str, **extra):
    response = client.get(url, secure=True, **extra)
    assert response.status_code == 200, (url, response.status_code)
    return response


def listed(response) -> list[str]:
    return [str(obj) for obj in response.context["cl"].result_list]


def issue(user, *, at: datetime) -> Certificate:
    return issue_certificate(user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR, now=at).certificate


# --- contracts and IDs -------------------------------------------------------------------


def test_a_contract_shows_its_ids_inline(operator_client, alice, bob, charlie):
    response = get(operator_client, f"/operator/accounts/contract/{alice.contract.pk}/change/")

    (inline,) = response.context["inline_admin_formsets"]
    assert sorted(str(user) for user in inline.formset.queryset) == ["alice-admin", "bob-user"]
    content = response.content.decode()
    assert 'value="alice-admin"' in content and 'value="bob-user"' in content
    assert "charlie-admin" not in content


def test_ids_are_searchable_by_login_id_and_by_e_mail(operator_client, alice, bob, charlie):
    assert listed(get(operator_client, "/operator/accounts/user/?q=bob-user")) == ["bob-user"]
    assert listed(get(operator_client, "/operator/accounts/user/?q=charlie@beta.example")) == ["charlie-admin"]
    assert listed(get(operator_client, "/operator/accounts/user/?q=alpha.example")) == ["alice-admin", "bob-user"]


def test_an_operator_adds_an_id_with_a_password(operator_client, contract_a):
    response = operator_client.post("/operator/accounts/user/add/", {
        "login_id": "erin-user", "contract": contract_a.pk, "role": "user", "email": "erin@alpha.example",
        "language": "en", "password1": "Another-horse-2026", "password2": "Another-horse-2026",
    }, secure=True)

    assert response.status_code == 302
    erin = User.objects.get(login_id="erin-user")
    assert (erin.contract, erin.role, erin.language) == (contract_a, User.Role.USER, "en")
    assert erin.check_password("Another-horse-2026")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CREATED, subject=erin)
    assert entry.actor.login_id == "olivia-operator"
    assert entry.detail["changed"]["role"] == {"old": None, "new": "user"}
    assert not any("password" in name for name in entry.detail["changed"])


def test_an_operators_change_to_an_id_is_audited_with_the_fields_it_touched(operator_client, olivia, bob):
    url = f"/operator/accounts/user/{bob.pk}/change/"
    form = get(operator_client, url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(contract=bob.contract_id, role="administrator", email="bob.new@alpha.example",
                groups=[], user_permissions=[])
    response = operator_client.post(url, data, secure=True)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CHANGED, subject=bob)
    assert entry.actor == olivia
    assert entry.detail["changed"] == {
        "email": {"old": "bob@alpha.example", "new": "bob.new@alpha.example"},
        "role": {"old": "user", "new": "administrator"},
    }


def test_a_password_set_by_an_operator_is_audited(operator_client, olivia, bob):
    response = operator_client.post(f"/operator/accounts/user/{bob.pk}/password/", {
        "password1": "Another-horse-2026", "password2": "Another-horse-2026",
    }, secure=True)
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.check_password("Another-horse-2026")
    assert AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_RESET, subject=bob).actor == olivia


def test_a_user_id_without_a_contract_is_a_form_error_not_a_server_error(operator_client):
    response = operator_client.post("/operator/accounts/user/add/", {
        "login_id": "eve-user", "contract": "", "role": "user", "email": "eve@example.com",
        "language": "ja", "password1": "Another-horse-2026", "password2": "Another-horse-2026",
    }, secure=True)

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    assert not User.objects.filter(login_id="eve-user").exists()


def add_inline_id(operator_client, existing: User, *, role: str):
    """Save the contract page of `existing`'s contract with one more ID, frank-user, added inline."""
    contract = existing.contract
    prefix = "ids"
    return operator_client.post(f"/operator/accounts/contract/{contract.pk}/change/", {
        "number": contract.number, "name": contract.name,
        f"{prefix}-TOTAL_FORMS": "2", f"{prefix}-INITIAL_FORMS": "1", f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-id": existing.pk, f"{prefix}-0-contract": contract.pk, f"{prefix}-0-login_id": existing.login_id,
        f"{prefix}-0-role": existing.role, f"{prefix}-0-email": existing.email,
        f"{prefix}-0-language": existing.language,
        f"{prefix}-1-contract": contract.pk, f"{prefix}-1-login_id": "frank-user", f"{prefix}-1-role": role,
        f"{prefix}-1-email": "frank@alpha.example", f"{prefix}-1-language": "ja",
    }, secure=True)


def test_an_id_added_inline_to_a_contract_needs_a_role(operator_client, alice):
    response = add_inline_id(operator_client, alice, role="")

    assert response.status_code == 200
    assert not User.objects.filter(login_id="frank-user").exists()


def test_an_id_added_inline_to_a_contract_is_audited(operator_client, olivia, alice):
    assert add_inline_id(operator_client, alice, role="user").status_code == 302
    frank = User.objects.get(login_id="frank-user")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CREATED, subject=frank)
    assert entry.actor == olivia and entry.detail["changed"]["login_id"]["new"] == "frank-user"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ID_CHANGED, subject=alice).exists()


@pytest.fixture
def certificate_states(ca, contract_a, charlie, olivia):
    """One ID per certificate state, as of NOW."""

    def new_id(login_id: str) -> User:
        return User.objects.create_user(login_id, f"{login_id}@alpha.example", None, contract=contract_a,
                                        role=User.Role.USER)

    issue(new_id("valid-long"), at=NOW - timedelta(days=10))
    issue(new_id("within-30"), at=NOW - timedelta(days=345))  # expires in about 20 days
    issue(new_id("within-10"), at=NOW - timedelta(days=360))  # expires in about 5 days
    issue(new_id("expired"), at=NOW - timedelta(days=400))
    new_id("no-certificate")
    revoked = issue(new_id("revoked"), at=NOW - timedelta(days=10))
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=olivia, now=NOW)
    # Inside the 10-day window but already renewed: only valid, not expiring.
    renewed = new_id("renewed")
    old = issue(renewed, at=NOW - timedelta(days=360))
    supersede_older_certificates(newer=old, now=NOW - timedelta(days=359))
    issue(renewed, at=NOW - timedelta(days=2))
    # charlie (of another contract) has none too; olivia, an operator, has hers (operator_client).


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("valid", ["olivia-operator", "renewed", "valid-long", "within-10", "within-30"]),  # hers: operator_client
        ("30", ["within-10", "within-30"]),
        ("10", ["within-10"]),
        ("expired", ["expired"]),
        ("none", ["charlie-admin", "no-certificate"]),
        ("revoked", ["revoked"]),
    ],
)
def test_ids_are_filtered_by_certificate_state(operator_client, certificate_states, value, expected):
    with time_machine.travel(NOW, tick=False):
        response = get(operator_client, f"/operator/accounts/user/?certificate={value}")

    assert listed(response) == expected


def test_the_id_list_shows_when_each_certificate_expires(operator_client, certificate_states):
    with time_machine.travel(NOW, tick=False):
        response = get(operator_client, "/operator/accounts/user/?q=within-10")

    (user,) = response.context["cl"].result_list
    assert user.certificate_expires_at == Certificate.objects.get(owner=user).not_after


# --- certificates ------------------------------------------------------------------------


def test_the_certificate_list_shows_serial_subject_validity_and_state(ca, operator_client, bob):
    certificate = issue(bob, at=NOW - timedelta(days=1))
    with time_machine.travel(NOW, tick=False):
        content = get(operator_client, "/operator/certificates/certificate/", HTTP_ACCEPT_LANGUAGE="en").content
    content = content.decode()
    assert certificate.serial_number in content
    assert "CN=bob-user" in content
    assert "Valid" in content or "valid" in content
    assert "2027" in content  # valid until next year


def test_certificates_cannot_be_added_or_deleted_in_the_admin(ca, operator_client, bob):
    certificate = issue(bob, at=NOW)

    assert operator_client.get("/operator/certificates/certificate/add/", secure=True).status_code == 403
    delete_url = f"/operator/certificates/certificate/{certificate.pk}/delete/"
    assert operator_client.get(delete_url, secure=True).status_code == 403
    assert operator_client.post(delete_url, {"post": "yes"}, secure=True).status_code == 403
    changelist = get(operator_client, "/operator/certificates/certificate/")
    assert "delete_selected" not in dict(changelist.context["action_form"].fields["action"].choices)
    assert Certificate.objects.filter(pk=certificate.pk).exists()


def test_lifecycle_fields_are_read_only(ca, operator_client, bob):
    certificate = issue(bob, at=NOW)
    url = f"/operator/certificates/certificate/{certificate.pk}/change/"

    response = get(operator_client, url)
    assert list(response.context["adminform"].form.fields) == []
    readonly = set(response.context["adminform"].readonly_fields)
    assert {"not_before", "not_after", "revoked_at", "revocation_reason", "superseded_at", "first_used_at",
            "serial_number", "subject", "owner"} <= readonly

    # View-only: a Save would write back every column as read, over a revocation committed meanwhile.
    assert operator_client.post(url, {
        "not_after": "2099-01-01 00:00:00", "revoked_at": "2026-01-01 00:00:00", "revocation_reason": "superseded",
        "serial_number": "1", "subject": "CN=evil",
    }, secure=True).status_code == 403
    before = (certificate.not_after, certificate.serial_number, certificate.subject)
    certificate.refresh_from_db()
    assert (certificate.not_after, certificate.serial_number, certificate.subject) == before
    assert certificate.revoked_at is None and certificate.revocation_reason == ""


def test_the_revoke_action_asks_for_confirmation_then_revokes_through_the_service(ca, operator_client, olivia, bob):
    certificate = issue(bob, at=NOW - timedelta(days=1))
    changelist = "/operator/certificates/certificate/"
    selection = {"action": "revoke", "_selected_action": [certificate.pk]}

    confirmation = operator_client.post(changelist, selection, secure=True)

    assert confirmation.status_code == 200
    assert "admin/certificates/certificate/revoke_confirmation.html" in [t.name for t in confirmation.templates]
    assert certificate.serial_number in confirmation.content.decode()
    certificate.refresh_from_db()
    assert certificate.revoked_at is None
    assert not RevocationList.objects.exists()

    done = operator_client.post(changelist, {**selection, "confirm": "1", "reason": "key_compromise"}, secure=True)

    assert done.status_code == 302
    certificate.refresh_from_db()
    assert certificate.revocation_reason == RevocationReason.KEY_COMPROMISE
    entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_REVOKED)
    assert (entry.actor, entry.subject, entry.certificate_serial) == (olivia, bob, certificate.serial_number)
    crl = x509.load_der_x509_crl(bytes(RevocationList.objects.latest("number").der))
    revoked = crl.get_revoked_certificate_by_serial_number(int(certificate.serial_number, 16))
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise


def test_the_revoke_action_without_a_valid_reason_revokes_nothing(ca, operator_client, bob):
    certificate = issue(bob, at=NOW - timedelta(days=1))

    response = operator_client.post("/operator/certificates/certificate/", {
        "action": "revoke", "_selected_action": [certificate.pk], "confirm": "1", "reason": "certificate_hold",
    }, secure=True)

    assert response.status_code == 200
    assert response.context["form"].errors
    certificate.refresh_from_db()
    assert certificate.revoked_at is None


# --- the audit log -----------------------------------------------------------------------


def test_the_audit_log_is_read_only_and_newest_first(operator_client, olivia, bob):
    for days_ago, action in ((3, AuditEntry.Action.ID_CREATED), (1, AuditEntry.Action.ID_LOCKED),
                             (2, AuditEntry.Action.LOGIN_FAILED)):
        AuditEntry.objects.create(action=action, subject=bob, at=NOW - timedelta(days=days_ago))

    before = AuditEntry.objects.count()  # with olivia's own certificate and login, now rather than before NOW

    response = get(operator_client, "/operator/accounts/auditentry/")
    assert [entry.action for entry in response.context["cl"].result_list if entry.subject == bob] == [
        AuditEntry.Action.ID_LOCKED, AuditEntry.Action.LOGIN_FAILED, AuditEntry.Action.ID_CREATED
    ]
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_LOCKED)
    assert operator_client.get("/operator/accounts/auditentry/add/", secure=True).status_code == 403
    assert operator_client.post(f"/operator/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"},
                                secure=True).status_code == 403
    assert operator_client.post(f"/operator/accounts/auditentry/{entry.pk}/change/", {"action": "logout"},
                                secure=True).status_code == 403
    entry.refresh_from_db()
    assert entry.action == AuditEntry.Action.ID_LOCKED
    assert AuditEntry.objects.count() == before


# --- languages ---------------------------------------------------------------------------


def test_the_admin_is_in_japanese_by_default(operator_client):
    content = get(operator_client, "/operator/").content.decode()

    assert 'lang="ja"' in content
    assert "電子証明書" in content
    assert "ログアウト" in content
    assert "Log out" not in content


def test_the_admin_is_in_english_when_the_browser_asks_for_it(operator_client):
    content = get(operator_client, "/operator/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert 'lang="en"' in content
    assert "Certificates" in content and "Log out" in content
    assert "ログアウト" not in content


def test_the_admin_is_in_english_once_english_is_chosen(operator_client):
    response = operator_client.post("/i18n/setlang/", {"language": "en", "next": "/operator/"}, secure=True)
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "en"

    content = get(operator_client, "/operator/certificates/certificate/").content.decode()
    assert 'lang="en"' in content and "Log out" in content


def test_the_ca_admin_shows_the_cas_but_never_their_keys_and_cannot_change_them(ca, operator_client):
    root_and_issuing = get(operator_client, "/operator/certificates/certificateauthority/")
    assert len(root_and_issuing.context["cl"].result_list) == 2

    page = get(operator_client, f"/operator/certificates/certificateauthority/{ca.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in page
    assert ca.encrypted_key_pem.splitlines()[1] not in page
    assert operator_client.post(f"/operator/certificates/certificateauthority/{ca.pk}/delete/", {"post": "yes"},
                                secure=True).status_code == 403
