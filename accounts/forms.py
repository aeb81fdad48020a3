from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import User
from .services import PasswordCheck, verify_password


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(
        label=_("Current password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password = forms.CharField(
        label=_("New password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html,
    )
    new_password_again = forms.CharField(
        label=_("New password (again)"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, user: User, *args, remote_addr: str | None = None, **kwargs) -> None:
        self.user = user
        self.remote_addr = remote_addr
        self.password_check: PasswordCheck | None = None
        super().__init__(*args, **kwargs)

    def clean_current_password(self) -> str:
        # A guess here is a guess at the ID's password like any other: audited, and counted toward the lock.
        password = self.cleaned_data["current_password"]
        self.password_check = verify_password(user=self.user, password=password, remote_addr=self.remote_addr)
        if self.password_check != PasswordCheck.ACCEPTED:
            raise ValidationError(_("The current password is not correct."), code="password_incorrect")
        return password

    def clean(self) -> dict:
        # The password rules are applied once, by accounts.services.change_password (each costs hashing).
        cleaned = super().clean()
        new, again = cleaned.get("new_password"), cleaned.get("new_password_again")
        if new and again and new != again:
            self.add_error("new_password_again", _("The two new passwords differ."))
        return cleaned
