"""The contract administrators' admin site at /manage/: alice (管理者ID of contract A) manages bob's ID.

Sessions are opened as the certificate login opens them: a client presenting the ID's own
certificate through the trusted proxy, logged in, with the session bound to that certificate.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as id_services
from accounts.models import AuditEntry, Contract, User
from certificates.models import CertificateAction, RevocationList, RevocationReason
from tests.support.clients import CertificateClient, issue_for, operator_signed_in, signed_in
from tests.support.personas import PASSWORD

pytestmark = pytest.mark.embedded



@pytest.fixture
def alice_client(ca, behind_proxy, alice) -> CertificateClient:
    return signed_in(alice)


def user_url(name: str, user: User) -> str:
    return f"/manage/accounts/userid/{user.pk}/{name}/"


def test_an_administrator_sees_its_contracts_user_ids_with_certificate_expiry_and_nothing_else(
    alice_client, alice, bob, dave
):
    certificate, _key = issue_for(bob)
    issue_for(dave)
    response = alice_client.get("/manage/accounts/userid/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "bob-user" in page
    assert "dave-user" not in page
    assert "charlie" not in page
    assert "alice-admin</a>" not in page  # administrator IDs are the bank's to manage, not listed
    rows = response.context["cl"].result_list
    assert [user.login_id for user in rows] == ["bob-user"]
    assert rows[0].certificate_valid_until == certificate.not_after


def test_the_id_list_costs_the_same_queries_for_one_id_as_for_six(alice_client, contract_a, bob):
    issue_for(bob)
    alice_client.get("/manage/accounts/userid/")  # warm caches (content types, the session's first save)
    with CaptureQueriesContext(connection) as one:
        assert alice_client.get("/manage/accounts/userid/").status_code == 200
    for number in range(5):
        user = User.objects.create_user(f"user-{number}", f"u{number}@alpha.example", PASSWORD,
                                        contract=contract_a, role=User.Role.USER)
        issue_for(user)
    with CaptureQueriesContext(connection) as six:
        response = alice_client.get("/manage/accounts/userid/")
    assert len(response.context["cl"].result_list) == 6
    assert len(six.captured_queries) == len(one.captured_queries)


def test_adding_a_user_id_forces_the_role_and_contract_and_shows_a_temporary_password_once(
    alice_client, alice, contract_b
):
    response = alice_client.post("/manage/accounts/userid/add/", {
        "login_id": "erin-user", "email": "erin@alpha.example", "language": "en",
        # Fields the form does not offer are ignored, whatever is sent.
        "contract": contract_b.pk, "role": "administrator", "is_staff": "on", "is_superuser": "on",
    })
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    erin = User.objects.get(login_id="erin-user")
    assert (erin.contract_id, erin.role, erin.is_staff, erin.is_superuser) == (alice.contract_id, "user", False, False)
    assert erin.language == "en"
    assert erin.must_change_password
    shown = re.search(r'class="temporary-password">([^<]+)<', response.content.decode()).group(1)
    assert erin.check_password(shown)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CREATED, subject=erin)
    assert entry.actor == alice and entry.contract_id == alice.contract_id
    # The change page that follows does not show it again.
    assert shown not in alice_client.get(user_url("change", erin)).content.decode()


@pytest.mark.parametrize("language", ["ja", "en"])
def test_a_taken_login_id_is_refused_with_words_that_do_not_tell_whose_it_is(alice_client, alice, bob, dave, language):
    alice_client.cookies["django_language"] = language
    replies = set()
    for taken in ("dave-user", "bob-user", "alice-admin"):  # another contract's, a user and the administrator here
        response = alice_client.post("/manage/accounts/userid/add/", {
            "login_id": taken, "email": "x@alpha.example", "language": "ja",
        })
        assert response.status_code == 200
        replies.add(tuple(response.context["adminform"].form.errors["login_id"]))
    assert replies == {({"ja": "このログインIDは使用できません。別のログインIDを指定してください。",
                         "en": "This login ID cannot be used. Choose another one."}[language],)}
    assert User.objects.filter(login_id="dave-user").get().contract.number == "3000001"


def test_suspending_and_resuming_are_confirmed_first_and_audited_with_the_administrator(alice_client, alice, bob):
    assert alice_client.get(user_url("suspend", bob)).status_code == 200
    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE  # the confirmation page changes nothing

    assert alice_client.post(user_url("suspend", bob)).status_code == 302
    bob.refresh_from_db()
    assert bob.state == User.State.SUSPENDED
    assert alice_client.post(user_url("resume", bob)).status_code == 302
    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE
    actions = list(AuditEntry.objects.filter(subject=bob, actor=alice).values_list("action", flat=True))
    assert actions == [AuditEntry.Action.ID_RESUMED, AuditEntry.Action.ID_SUSPENDED]


def test_an_id_locked_by_failed_passwords_is_unlocked_by_its_administrator(alice_client, alice, bob, settings):
    for _attempt in range(settings.LOCKOUT_THRESHOLD):
        id_services.verify_password(user=bob, password="wrong-password-1")
    bob.refresh_from_db()
    assert bob.state == User.State.LOCKED
    assert alice_client.post(user_url("unlock", bob)).status_code == 302
    bob.refresh_from_db()
    assert (bob.state, bob.failed_password_attempts) == (User.State.ACTIVE, 0)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ID_UNLOCKED, subject=bob, actor=alice).exists()


def test_suspending_several_ids_from_the_list_uses_the_service(alice_client, alice, bob, contract_a):
    frank = User.objects.create_user("frank-user", "f@alpha.example", PASSWORD, contract=contract_a, role="user")
    response = alice_client.post("/manage/accounts/userid/", {
        "action": "suspend", "_selected_action": [bob.pk, frank.pk],
    })
    assert response.status_code == 302
    assert set(User.objects.filter(state="suspended").values_list("login_id", flat=True)) == {"bob-user",
                                                                                            "frank-user"}
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ID_SUSPENDED, actor=alice).count() == 2


def test_resetting_a_password_shows_a_temporary_one_that_must_be_changed_at_the_next_login(
    alice_client, alice, bob
):
    response = alice_client.post(user_url("reset-password", bob))
    assert response.status_code == 200
    shown = re.search(r'class="temporary-password">([^<]+)<', response.content.decode()).group(1)
    bob.refresh_from_db()
    assert bob.check_password(shown) and not bob.check_password(PASSWORD)
    assert bob.must_change_password
    assert AuditEntry.objects.filter(action=AuditEntry.Action.PASSWORD_RESET, subject=bob, actor=alice).exists()


def test_revoking_a_users_certificate_asks_for_a_reason_and_goes_through_the_revocation_service(
    alice_client, alice, bob
):
    certificate, _key = issue_for(bob)
    url = f"/manage/certificates/certificate/{certificate.pk}/revoke/"
    confirmation = alice_client.get(url)
    assert confirmation.status_code == 200
    offered = [value for value, _label in confirmation.context["form"].fields["reason"].choices]
    assert RevocationReason.SUPERSEDED not in offered and RevocationReason.KEY_COMPROMISE in offered
    crls_before = RevocationList.objects.count()

    assert alice_client.post(url, {"reason": "key_compromise"}).status_code == 302
    certificate.refresh_from_db()
    assert certificate.revocation_reason == RevocationReason.KEY_COMPROMISE
    assert RevocationList.objects.count() == crls_before + 1  # published at once
    entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_REVOKED, subject=bob)
    assert entry.actor == alice and entry.certificate_serial == certificate.serial_number


def test_revocation_without_a_reason_changes_nothing(alice_client, bob):
    certificate, _key = issue_for(bob)
    response = alice_client.post(f"/manage/certificates/certificate/{certificate.pk}/revoke/", {"reason": ""})
    assert response.status_code == 200
    certificate.refresh_from_db()
    assert certificate.revoked_at is None


def test_changing_a_user_ids_e_mail_address_is_audited_with_old_and_new(alice_client, alice, bob):
    response = alice_client.post(user_url("change", bob), {"email": "bob.new@alpha.example", "language": "ja"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.email == "bob.new@alpha.example"
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CHANGED, subject=bob)
    assert entry.actor == alice
    assert entry.detail["changed"]["email"] == {"old": "bob@alpha.example", "new": "bob.new@alpha.example"}


@pytest.mark.parametrize("page", ["change", "suspend", "resume", "unlock", "reset-password"])
def test_another_contracts_id_is_not_found_on_any_page_or_action(alice_client, dave, page):
    assert alice_client.get(user_url(page, dave)).status_code == 404
    assert alice_client.post(user_url(page, dave), {"email": "evil@alpha.example", "language": "en"}).status_code \
        == 404
    dave.refresh_from_db()
    assert (dave.state, dave.email, dave.must_change_password) == ("active", "dave@beta.example", False)
    assert dave.check_password(PASSWORD)


def test_another_contracts_certificate_is_not_found_and_not_revoked(alice_client, dave):
    certificate, _key = issue_for(dave)
    for url in (f"/manage/certificates/certificate/{certificate.pk}/change/",
                f"/manage/certificates/certificate/{certificate.pk}/revoke/"):
        assert alice_client.get(url).status_code == 404
        assert alice_client.post(url, {"reason": "key_compromise"}).status_code == 404
    certificate.refresh_from_db()
    assert certificate.revoked_at is None


def test_no_list_filters_on_password_hashes(alice_client, bob):
    # ?password__startswith=… would tell a user's hash apart one character at a time.
    for url, lookup in (("/manage/accounts/userid/", "password__startswith"),
                        ("/manage/certificates/certificate/", "owner__password__startswith"),
                        ("/manage/accounts/auditentry/", "subject__password__startswith")):
        assert alice_client.get(url, {lookup: bob.password[:12]}).status_code == 400, url


def test_bulk_actions_ignore_ids_of_another_contract(alice_client, dave):
    alice_client.post("/manage/accounts/userid/", {"action": "suspend", "_selected_action": [dave.pk]})
    dave.refresh_from_db()
    assert dave.state == User.State.ACTIVE


def test_no_operator_only_field_or_action_is_offered(alice_client, bob):
    change = alice_client.get(user_url("change", bob))
    form_fields = set(change.context["adminform"].form.fields)
    assert form_fields == {"email", "language"}
    page = change.content.decode()
    for field in ("is_staff", "is_superuser", "groups", "user_permissions", "contract", "role", "password"):
        assert f'name="{field}"' not in page
    assert "/delete/" not in page
    actions = alice_client.get("/manage/accounts/userid/").context["action_form"].fields["action"].choices
    assert {value for value, _label in actions} == {"", "suspend", "resume", "unlock"}
    assert alice_client.get(user_url("delete", bob)).status_code == 403
    assert alice_client.get(user_url("history", bob)).status_code == 404
    assert alice_client.get("/manage/accounts/contract/").status_code == 404
    assert alice_client.get("/manage/certificates/certificateauthority/").status_code == 404


def test_the_contracts_audit_log_is_read_only_and_shows_only_its_own_entries(alice_client, alice, bob, dave,
                                                                            olivia):
    id_services.suspend_id(user=bob, by=olivia)
    id_services.suspend_id(user=dave, by=olivia)
    response = alice_client.get("/manage/accounts/auditentry/")
    entries = list(response.context["cl"].result_list)
    assert {entry.subject_id for entry in entries} <= {alice.pk, bob.pk}
    page = response.content.decode()
    assert "dave-user" not in page
    assert "olivia-operator" not in page  # operators' IDs are the bank's own business
    entry = AuditEntry.objects.get(subject=bob, action=AuditEntry.Action.ID_SUSPENDED)
    detail = alice_client.get(f"/manage/accounts/auditentry/{entry.pk}/change/")
    assert detail.status_code == 200 and 'type="submit" value="' not in detail.content.decode()
    assert alice_client.post(f"/manage/accounts/auditentry/{entry.pk}/change/", {"action": "logout"}).status_code \
        == 403
    other = AuditEntry.objects.get(subject=dave, action=AuditEntry.Action.ID_SUSPENDED)
    assert alice_client.get(f"/manage/accounts/auditentry/{other.pk}/change/").status_code == 404


def test_there_is_no_password_only_login_on_the_contract_administrators_site(client, alice):
    response = client.post("/manage/login/", {"username": "alice-admin", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/?next=")
    assert "_auth_user_id" not in client.session
    anonymous = client.get("/manage/accounts/userid/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/?next=/manage/accounts/userid/")


def test_an_administrators_session_not_opened_by_the_certificate_login_is_refused(ca, behind_proxy, alice):
    certificate, _key = issue_for(alice)
    client = CertificateClient(certificate)
    client.force_login(alice)  # a session, but not bound to a certificate by the login
    assert client.get("/manage/").status_code == 403


def test_an_administrator_is_logged_out_when_the_certificate_changes(ca, behind_proxy, alice, bob):
    client = signed_in(alice)
    other, _key = issue_for(bob)
    client.defaults.update(CertificateClient(other).defaults)
    response = client.get("/manage/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_user_id_reaches_neither_admin_site(ca, behind_proxy, bob):
    client = signed_in(bob)
    assert client.get("/manage/").status_code == 403
    assert client.get("/manage/accounts/userid/").status_code == 403
    operators = client.get("/operator/")
    assert operators.status_code == 302 and operators["Location"].startswith("/operator/login/")
    assert client.get("/operator/accounts/user/").status_code == 302


def test_an_operator_reaches_the_operators_site_but_not_the_contract_administrators(ca, behind_proxy, olivia, bob):
    client = operator_signed_in(olivia)
    assert client.get("/manage/").status_code == 403
    listing = client.get("/operator/accounts/user/")
    assert listing.status_code == 200 and "bob-user" in listing.content.decode()


def test_logging_out_of_the_contract_site_is_the_portals_audited_logout(alice_client, alice):
    response = alice_client.post("/manage/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in alice_client.session
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGOUT, subject=alice).exists()


def test_the_site_speaks_japanese_by_default_and_english_on_request(alice_client, bob):
    japanese = alice_client.get("/manage/accounts/userid/").content.decode()
    assert 'lang="ja"' in japanese and "契約管理" in japanese
    english = alice_client.get("/manage/accounts/userid/", headers={"accept-language": "en"}).content.decode()
    assert "Contract administration" in english


def test_the_site_header_names_the_administrators_contract(alice_client):
    page = alice_client.get("/manage/").content.decode()
    assert Contract.objects.get(number="2000001").name in page


def test_a_suspended_user_id_is_logged_out_at_its_next_request(alice_client, bob):
    certificate, _key = issue_for(bob)
    bob_client = signed_in(bob, certificate)
    assert bob_client.get("/password/").status_code == 200
    alice_client.post(user_url("suspend", bob))
    response = bob_client.get("/password/")
    assert response.status_code == 302 and response["Location"].startswith("/?next=")


def test_a_user_whose_certificate_is_revoked_is_logged_out_at_its_next_request(alice_client, bob):
    certificate, _key = issue_for(bob)
    bob_client = signed_in(bob, certificate)
    assert bob_client.get("/password/").status_code == 200
    alice_client.post(f"/manage/certificates/certificate/{certificate.pk}/revoke/", {"reason": "affiliation_changed"})
    bob_client.get("/password/")
    assert "_auth_user_id" not in bob_client.session
