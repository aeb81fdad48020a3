"""Workflows on IDs: password checks with lock-out, unlocking, suspending and resuming."""

from __future__ import annotations

import enum

from django.conf import settings
from django.db import transaction

from . import audit
from .models import AuditEntry, User


class PasswordCheck(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    LOCKED_NOW = "locked_now"
    ID_NOT_ACTIVE = "id_not_active"


class StateChangeRefused(Exception):
    """The ID is not in a state that allows the requested change."""


@transaction.atomic
def verify_password(*, user: User, password: str, remote_addr: str | None = None) -> PasswordCheck:
    """Check a login password, counting failures; the threshold-th failure in a row locks the ID."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.state != User.State.ACTIVE:
        audit.record(AuditEntry.Action.LOGIN_FAILED, subject=user, remote_addr=remote_addr, reason=user.state)
        return PasswordCheck.ID_NOT_ACTIVE
    if user.check_password(password):
        if user.failed_password_attempts:
            user.failed_password_attempts = 0
            user.save(update_fields=["failed_password_attempts"])
        return PasswordCheck.ACCEPTED
    user.failed_password_attempts += 1
    audit.record(
        AuditEntry.Action.LOGIN_FAILED,
        subject=user,
        remote_addr=remote_addr,
        reason="wrong_password",
        attempts=user.failed_password_attempts,
    )
    if user.failed_password_attempts >= settings.LOCKOUT_THRESHOLD:
        user.state = User.State.LOCKED
        user.save(update_fields=["failed_password_attempts", "state"])
        audit.record(AuditEntry.Action.ID_LOCKED, subject=user, remote_addr=remote_addr,
                     attempts=user.failed_password_attempts)
        return PasswordCheck.LOCKED_NOW
    user.save(update_fields=["failed_password_attempts"])
    return PasswordCheck.REFUSED


def _change_state(*, user: User, by: User | None, expected: str, new: str, action: AuditEntry.Action) -> User:
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.state != expected:
            raise StateChangeRefused(
                f"{user.login_id} is {user.get_state_display()}, not {User.State(expected).label}"
            )
        user.state = new
        user.failed_password_attempts = 0
        user.save(update_fields=["state", "failed_password_attempts"])
        audit.record(action, subject=user, actor=by)
    return user


def unlock_id(*, user: User, by: User | None) -> User:
    """Let a locked ID sign in again, with its failure count back at zero."""
    return _change_state(
        user=user, by=by, expected=User.State.LOCKED, new=User.State.ACTIVE, action=AuditEntry.Action.ID_UNLOCKED
    )


def suspend_id(*, user: User, by: User | None) -> User:
    return _change_state(
        user=user, by=by, expected=User.State.ACTIVE, new=User.State.SUSPENDED, action=AuditEntry.Action.ID_SUSPENDED
    )


def resume_id(*, user: User, by: User | None) -> User:
    return _change_state(
        user=user, by=by, expected=User.State.SUSPENDED, new=User.State.ACTIVE, action=AuditEntry.Action.ID_RESUMED
    )
