"""Password rules for every ID (length, not the login ID, not reused) and the change a temporary password forces."""

from __future__ import annotations

import pytest
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts import services
from accounts.models import AuditEntry, PasswordHistory, User
from tests.support.clients import CertificateClient, form_errors, issue_for, signed_in
from tests.support.personas import PASSWORD

pytestmark = pytest.mark.embedded



def refusal_codes(password: str, user: User) -> set[str]:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        return {e.code for e in error.error_list}
    return set()


def test_a_password_shorter_than_ten_characters_is_refused(bob):
    assert "password_too_short" in refusal_codes("Sh0rt-pw!", bob)
    assert refusal_codes("Long-enough-2026", bob) == set()


@pytest.mark.parametrize("password", ["bob-user-2026!", "xxBOB-USERxx99", "resu-bob-2026x"])
def test_a_password_containing_the_login_id_is_refused_in_any_case_or_reversed(bob, password):
    assert "password_contains_login_id" in refusal_codes(password, bob)


def test_the_last_five_passwords_cannot_be_chosen_again_and_the_sixth_can(bob):
    chosen = [f"Autumn-leaves-{n}x" for n in range(5)]
    for password in chosen:
        services.change_password(user=bob, new_password=password)
    # The current one and the four before it; the conftest password was the sixth from now.
    for password in chosen:
        assert "password_reused" in refusal_codes(password, bob), password
    assert refusal_codes(PASSWORD, bob) == set()
    assert PasswordHistory.objects.filter(user=bob).count() == 5


def test_the_current_password_is_refused_even_for_an_id_with_no_history(bob):
    PasswordHistory.objects.filter(user=bob).delete()
    assert "password_reused" in refusal_codes(PASSWORD, bob)


def test_a_password_set_by_an_operator_also_enters_the_history(bob):
    bob.set_password("Set-by-operator-77")
    bob.save()
    assert "password_reused" in refusal_codes("Set-by-operator-77", bob)


def test_changing_a_password_is_validated_audited_and_clears_the_change_requirement(bob):
    bob.must_change_password = True
    bob.save(update_fields=["must_change_password"])
    with pytest.raises(ValidationError):
        services.change_password(user=bob, new_password="bob-user-1234")
    services.change_password(user=bob, new_password="Winter-morning-42")
    bob.refresh_from_db()
    assert bob.check_password("Winter-morning-42")
    assert not bob.must_change_password
    entry = AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_CHANGED)
    assert entry.subject == bob and entry.actor == bob


def test_a_reset_gives_a_working_temporary_password_that_satisfies_the_rules(alice, bob):
    temporary = services.reset_password(user=bob, by=alice)
    bob.refresh_from_db()
    assert bob.check_password(temporary) and bob.must_change_password
    assert len(temporary) >= 10
    PasswordHistory.objects.filter(user=bob).delete()
    assert refusal_codes(temporary, User(login_id="someone-else")) == set()
    assert AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_RESET).actor == alice


def test_creating_a_user_id_gives_a_temporary_password_and_audits_it(alice, contract_a):
    new = services.create_user_id(contract=contract_a, login_id="gina-user", email="gina@alpha.example",
                                  language="ja", by=alice)
    assert new.user.check_password(new.temporary_password)
    assert (new.user.role, new.user.must_change_password) == (User.Role.USER, True)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_CREATED)
    assert (entry.subject, entry.actor, entry.contract) == (new.user, alice, contract_a)


def test_an_id_with_a_temporary_password_is_sent_to_the_change_page_from_anywhere(ca, behind_proxy, alice):
    client = signed_in(alice)
    alice.must_change_password = True
    alice.save(update_fields=["must_change_password"])
    for path in ("/manage/", "/manage/accounts/userid/", "/notices/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/password/?next="), path
    assert client.get("/password/").status_code == 200
    assert client.get("/static/admin/css/base.css").status_code != 302


def test_after_choosing_a_password_the_id_continues_where_it_was_going(ca, behind_proxy, alice):
    certificate, _key = issue_for(alice)
    temporary = services.reset_password(user=alice, by=None)
    alice.refresh_from_db()
    client = signed_in(alice, certificate)  # logged in again, with the temporary password
    response = client.post("/password/", {
        "current_password": temporary, "new_password": "Fresh-start-2026",
        "new_password_again": "Fresh-start-2026", "next": "/manage/",
    })
    assert response.status_code == 302 and response["Location"] == "/manage/"
    assert client.get("/manage/").status_code == 200  # still logged in, no longer redirected


def test_a_reset_ends_the_ids_open_sessions(ca, behind_proxy, alice, bob):
    client = signed_in(alice)
    assert client.get("/manage/").status_code == 200
    services.reset_password(user=alice, by=None)
    assert client.get("/manage/").status_code == 302


def test_a_wrong_current_password_changes_nothing(ca, behind_proxy, bob):
    client = signed_in(bob)
    response = client.post("/password/", {
        "current_password": "not-the-password", "new_password": "Fresh-start-2026",
        "new_password_again": "Fresh-start-2026",
    })
    assert response.status_code == 200
    assert form_errors(response, "current_password")
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)


def test_a_refused_new_password_shows_every_rule_it_breaks(ca, behind_proxy, bob):
    client = signed_in(bob)
    response = client.post("/password/", {
        "current_password": PASSWORD, "new_password": PASSWORD, "new_password_again": PASSWORD,
    })
    assert response.status_code == 200
    assert form_errors(response, "new_password")


def test_an_offsite_next_is_ignored_after_the_change(ca, behind_proxy, bob):
    client = signed_in(bob)
    response = client.post("/password/", {
        "current_password": PASSWORD, "new_password": "Fresh-start-2026",
        "new_password_again": "Fresh-start-2026", "next": "https://evil.example/",
    })
    assert response.status_code == 302 and response["Location"] == "/password/"


def test_the_password_page_sends_anonymous_visitors_to_the_login(behind_proxy, db):
    response = CertificateClient(None).get("/password/")
    assert response.status_code == 302 and response["Location"].startswith("/?next=/password/")


def test_wrong_current_passwords_are_audited_and_lock_the_id_like_any_others(ca, behind_proxy, bob, settings):
    settings.LOCKOUT_THRESHOLD = 3
    client = signed_in(bob)
    change = {"new_password": "Fresh-start-2026", "new_password_again": "Fresh-start-2026"}
    for attempt in (1, 2):
        response = client.post("/password/", {"current_password": f"guess-{attempt}", **change},
                               HTTP_X_REAL_IP="198.51.100.30")
        assert response.status_code == 200 and form_errors(response, "current_password")
        bob.refresh_from_db()
        assert bob.failed_password_attempts == attempt
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, subject=bob).first()
    assert (entry.detail["reason"], entry.remote_addr) == ("wrong_password", "198.51.100.30")

    response = client.post("/password/", {"current_password": "guess-3", **change})

    assert response.status_code == 302 and response["Location"] == "/"
    bob.refresh_from_db()
    assert bob.state == User.State.LOCKED and bob.check_password(PASSWORD)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ID_LOCKED, subject=bob).exists()
    assert "_auth_user_id" not in client.session
    assert "ロックされています" in client.get("/").content.decode()


def test_the_right_current_password_clears_the_count_of_wrong_ones(ca, behind_proxy, bob):
    client = signed_in(bob)
    change = {"new_password": "Fresh-start-2026", "new_password_again": "Fresh-start-2026"}
    client.post("/password/", {"current_password": "guess", **change})
    assert client.post("/password/", {"current_password": PASSWORD, **change}).status_code == 302
    bob.refresh_from_db()
    assert bob.failed_password_attempts == 0
