"""Forms of the customers' login, of the in-browser enrollment (proving an ID before obtaining a
certificate) and of revocation."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import RevocationReason
from .otp import CODE_DIGITS


class LoginForm(forms.Form):
    login_id = forms.CharField(label=_("Login ID"), max_length=32, strip=True,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label=_("Password"), max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class ObtainIdentifyForm(forms.Form):
    login_id = forms.CharField(label=_("Login ID"), max_length=32, strip=True)
    password = forms.CharField(label=_("Password"), max_length=128, strip=False, widget=forms.PasswordInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["login_id"].widget.attrs.update(autocomplete="username", autocapitalize="none")
        self.fields["password"].widget.attrs.update(autocomplete="current-password")


class OneTimeCodeForm(forms.Form):
    # Any text is passed on: a malformed entry counts as a wrong one and is audited like it.
    code = forms.CharField(label=_("Confirmation code"), max_length=16)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].widget.attrs.update(
            autocomplete="one-time-code", inputmode="numeric", maxlength=str(CODE_DIGITS + 2)
        )


class RevocationForm(forms.Form):
    """The reason for revoking, asked by the operators' revoke action and the contract site's revoke page."""

    reason = forms.ChoiceField(label=_("revocation reason"), choices=RevocationReason.for_one_certificate)

    def __init__(self, *args, by_customer: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if by_customer:
            # Superseding is the portal's own doing at renewal, not a customer's choice; nothing is preselected.
            self.fields["reason"].choices = [("", "---------")] + [
                (value, label) for value, label in RevocationReason.for_one_certificate()
                if value != RevocationReason.SUPERSEDED
            ]
