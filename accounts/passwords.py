"""Password rules a bank expects of every ID, and the temporary passwords an administrator hands out.

Length and common-password checks are Django's (settings.AUTH_PASSWORD_VALIDATORS); the two here
refuse a password that contains the login ID and one of the ID's recent passwords.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

# Read off a screen and typed once: no 0/O, 1/l/I look-alikes.
TEMPORARY_PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 (an alphabet, not a password)
TEMPORARY_PASSWORD_LENGTH = 12


def temporary_password() -> str:
    """A random one-time password (about 70 bits) that satisfies the length rule."""
    while True:
        password = "".join(secrets.choice(TEMPORARY_PASSWORD_ALPHABET) for _ in range(TEMPORARY_PASSWORD_LENGTH))
        # Mixed letters and digits, so that it never looks like a common or numeric password.
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


class NotLoginIDValidator:
    """Refuse a password that contains the ID's login ID, in any letter case or reversed."""

    def validate(self, password: str, user=None) -> None:
        login_id = getattr(user, "login_id", "") or ""
        if not login_id:
            return
        lowered = password.lower()
        if login_id.lower() in lowered or login_id.lower()[::-1] in lowered:
            raise ValidationError(_("The password must not contain the login ID."), code="password_contains_login_id")

    def get_help_text(self) -> str:
        return _("Your password must not contain your login ID.")


class PasswordReuseValidator:
    """Refuse the current password and the ones before it, `remember` in all."""

    def __init__(self, remember: int = 5) -> None:
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self.remember = remember

    def _recent_hashes(self, user) -> list[str]:
        hashes = list(user.password_history.values_list("password", flat=True)[: self.remember])
        # An ID created before the history existed still has its current password refused.
        if user.password and user.password not in hashes:
            hashes.insert(0, user.password)
        return hashes[: self.remember]

    def validate(self, password: str, user=None) -> None:
        if user is None or user.pk is None:
            return
        for encoded in self._recent_hashes(user):
            if check_password(password, encoded):
                raise ValidationError(
                    _("The password must not be one of your last %(count)d passwords.") % {"count": self.remember},
                    code="password_reused",
                )

    def password_changed(self, password: str, user=None) -> None:
        """Called by User.save() once a new password is stored: remember its hash, forget the oldest."""
        if user is None or user.pk is None or not user.has_usable_password():
            return
        from .models import PasswordHistory  # validators are loaded before the app registry is ready

        with transaction.atomic():
            PasswordHistory.objects.create(user=user, password=user.password)
            stale = user.password_history.values_list("pk", flat=True)[self.remember :]
            PasswordHistory.objects.filter(pk__in=list(stale)).delete()

    def get_help_text(self) -> str:
        return _("Your password must not be one of your last %(count)d passwords.") % {"count": self.remember}
