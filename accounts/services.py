"""Workflows on IDs: password checks with lock-out, unlocking, suspending and resuming,
creating user IDs, resetting and changing passwords."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import password_validation
from django.db import transaction
from django.utils.translation import gettext

from . import audit
from .models import AuditEntry, Contract, User
from .passwords import temporary_password


class PasswordCheck(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    LOCKED_NOW = "locked_now"
    ID_NOT_ACTIVE = "id_not_active"


def refusal_for_state(state: str) -> str:
    """What an ID that may not log in is told, in the active language: the portal's login and the
    password change that locked it say it in the same words."""
    if state == User.State.SUSPENDED:
        return gettext("This ID is suspended. Please contact your contract administrator.")
    return gettext(
        "This ID is locked after too many failed attempts. Ask your contract administrator or the bank to unlock it."
    )


class StateChangeRefused(Exception):
    """The ID is not in a state that allows the requested change."""


def _count_failure(user: User, *, reason: str, remote_addr: str | None, **detail) -> PasswordCheck:
    """On a row already locked: the threshold-th failure in a row locks the ID."""
    user.failed_password_attempts += 1
    audit.record(
        AuditEntry.Action.LOGIN_FAILED, subject=user, remote_addr=remote_addr, reason=reason,
        attempts=user.failed_password_attempts, **detail,
    )
    if user.failed_password_attempts >= settings.LOCKOUT_THRESHOLD:
        user.state = User.State.LOCKED
        user.save(update_fields=["failed_password_attempts", "state"])
        audit.record(AuditEntry.Action.ID_LOCKED, subject=user, remote_addr=remote_addr,
                     attempts=user.failed_password_attempts)
        return PasswordCheck.LOCKED_NOW
    user.save(update_fields=["failed_password_attempts"])
    return PasswordCheck.REFUSED


@transaction.atomic
def verify_password(*, user: User, password: str, remote_addr: str | None = None) -> PasswordCheck:
    """Check a login password, counting failures; the threshold-th failure in a row locks the ID."""
    caller, user = user, User.objects.select_for_update().get(pk=user.pk)
    if user.state != User.State.ACTIVE:
        audit.record(AuditEntry.Action.LOGIN_FAILED, subject=user, remote_addr=remote_addr, reason=user.state)
        return PasswordCheck.ID_NOT_ACTIVE
    if user.check_password(password):
        if user.failed_password_attempts:
            user.failed_password_attempts = 0
            user.save(update_fields=["failed_password_attempts"])
        # check_password may have saved a stronger hash (a raised hasher iteration count): the caller's
        # instance gets it too, or a session opened with that instance would not match the ID's hash.
        caller.password = user.password
        return PasswordCheck.ACCEPTED
    return _count_failure(user, reason="wrong_password", remote_addr=remote_addr)


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


@dataclass(frozen=True)
class NewID:
    user: User
    temporary_password: str  # shown once to the administrator, never stored in clear


def create_user_id(
    *, contract: Contract, login_id: str, email: str, language: str, by: User | None
) -> NewID:
    """Register a user ID (利用者ID) in `contract` with a temporary password to change at first login.

    Raises django.core.exceptions.ValidationError for a taken or malformed login ID or address.
    """
    password = temporary_password()
    with transaction.atomic():
        user = User.objects.create_user(
            login_id, email, password, contract=contract, role=User.Role.USER, language=language,
            must_change_password=True,
        )
        audit.record(AuditEntry.Action.ID_CREATED, subject=user, actor=by, role=user.role)
    return NewID(user=user, temporary_password=password)


def update_id_details(*, user: User, email: str, language: str, by: User | None) -> User:
    """Change an ID's registered e-mail address (where reminders go) and language."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        changed = {}
        if user.email != email:
            changed["email"] = {"old": user.email, "new": email}
        if user.language != language:
            changed["language"] = {"old": user.language, "new": language}
        if not changed:
            return user
        user.email, user.language = email, language
        user.full_clean(exclude=["password"])
        user.save(update_fields=["email", "language"])
        audit.record(AuditEntry.Action.ID_CHANGED, subject=user, actor=by, changed=changed)
    return user


def reset_password(*, user: User, by: User | None) -> str:
    """Give `user` a temporary password that must be changed at the next login; returns it once.

    The ID's sessions end (the session hash follows the password); its state is unchanged,
    so a locked ID stays locked until it is unlocked.
    """
    password = temporary_password()
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user.set_password(password)
        user.must_change_password = True
        user.save(update_fields=["password", "must_change_password"])
        audit.record(AuditEntry.Action.PASSWORD_RESET, subject=user, actor=by)
    return password


def change_password(*, user: User, new_password: str) -> User:
    """The ID's own password change, checked against the password rules.

    Raises django.core.exceptions.ValidationError listing every rule the password breaks.
    """
    # Checked before taking the row lock: comparing with the remembered hashes takes a second.
    password_validation.validate_password(new_password, User.objects.get(pk=user.pk))
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.set_password(new_password)
        locked.must_change_password = False
        locked.save(update_fields=["password", "must_change_password"])
        audit.record(AuditEntry.Action.PASSWORD_CHANGED, subject=locked, actor=locked)
    # The caller's object follows, so that update_session_auth_hash() keeps the session.
    user.password, user.must_change_password = locked.password, False
    return user
