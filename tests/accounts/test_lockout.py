"""Repeated wrong passwords lock an ID; an operator unlocks it; both are audited."""

from __future__ import annotations

import pytest

from accounts.models import AuditEntry, User
from accounts.services import PasswordCheck, StateChangeRefused, unlock_id, verify_password
from tests.support.clients import operator_signed_in
from tests.support.personas import PASSWORD

pytestmark = pytest.mark.django_db



def fail(user: User, times: int) -> list[PasswordCheck]:
    return [verify_password(user=user, password="wrong-password", remote_addr="192.0.2.7") for _ in range(times)]


def test_the_threshold_th_wrong_password_in_a_row_locks_the_id(bob, settings):
    settings.LOCKOUT_THRESHOLD = 3

    assert fail(bob, 3) == [PasswordCheck.REFUSED, PasswordCheck.REFUSED, PasswordCheck.LOCKED_NOW]

    bob.refresh_from_db()
    assert bob.state == User.State.LOCKED
    assert not bob.is_active
    locked = AuditEntry.objects.get(action=AuditEntry.Action.ID_LOCKED)
    assert (locked.subject, locked.contract, locked.remote_addr) == (bob, bob.contract, "192.0.2.7")
    assert locked.detail["attempts"] == 3
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, subject=bob).count() == 3


def test_one_failure_fewer_than_the_threshold_does_not_lock(bob, settings):
    settings.LOCKOUT_THRESHOLD = 5

    assert PasswordCheck.LOCKED_NOW not in fail(bob, 4)
    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ID_LOCKED).exists()


def test_a_locked_id_is_refused_even_with_the_correct_password(bob, settings):
    settings.LOCKOUT_THRESHOLD = 2
    fail(bob, 2)

    assert verify_password(user=bob, password=PASSWORD) == PasswordCheck.ID_NOT_ACTIVE
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGIN_FAILED, subject=bob, detail__reason=User.State.LOCKED
    ).exists()


def test_a_correct_password_resets_the_failure_count(bob, settings):
    settings.LOCKOUT_THRESHOLD = 3
    fail(bob, 2)

    assert verify_password(user=bob, password=PASSWORD) == PasswordCheck.ACCEPTED
    bob.refresh_from_db()
    assert bob.failed_password_attempts == 0
    # The count starts again: two more failures do not lock.
    assert fail(bob, 2) == [PasswordCheck.REFUSED, PasswordCheck.REFUSED]
    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE


def test_an_operator_unlocks_a_locked_id_and_the_unlock_is_audited_with_the_operator(bob, olivia, settings):
    settings.LOCKOUT_THRESHOLD = 2
    fail(bob, 2)

    unlock_id(user=bob, by=olivia)

    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE
    assert bob.failed_password_attempts == 0
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ID_UNLOCKED)
    assert (entry.subject, entry.actor, entry.contract) == (bob, olivia, bob.contract)
    assert verify_password(user=bob, password=PASSWORD) == PasswordCheck.ACCEPTED
    # After an unlock the full threshold applies again.
    assert fail(bob, 1) == [PasswordCheck.REFUSED]


def test_unlocking_an_id_that_is_not_locked_is_refused(bob, olivia):
    with pytest.raises(StateChangeRefused):
        unlock_id(user=bob, by=olivia)
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ID_UNLOCKED).exists()


def test_the_operators_admin_unlock_action_goes_through_the_service(ca, behind_proxy, bob, olivia, settings):
    settings.LOCKOUT_THRESHOLD = 1
    fail(bob, 1)
    client = operator_signed_in(olivia)

    response = client.post(
        "/operator/accounts/user/", {"action": "unlock", "_selected_action": [bob.pk]}, secure=True, follow=True
    )

    assert response.status_code == 200
    bob.refresh_from_db()
    assert bob.state == User.State.ACTIVE
    assert AuditEntry.objects.get(action=AuditEntry.Action.ID_UNLOCKED).actor == olivia


# The operators' login (certificate, then password, counted for the operator only): certificates/test_operator_login.py.
