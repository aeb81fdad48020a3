"""No password-only sign-in: every login of this portal needs a client certificate too.

The customers' login (certificates.login) and the operators' (certificates.operator_login)
check the certificate, then the password through accounts.services.verify_password, which
counts failures toward the lock. Django's authenticate() (a password alone, for any ID) would
be a door beside them: here it signs in nobody and never reads or writes a failure count.
ModelBackend still loads the user of a session.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .models import User


class CertificateLoginOnlyBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs) -> User | None:
        # PermissionDenied, not None: no backend after this one gets to try the password.
        raise PermissionDenied
