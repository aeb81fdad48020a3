"""Password sign-in through Django's auth (the operators' admin) counts toward the lock like any other."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .models import User
from .services import PasswordCheck, verify_password


class LockoutModelBackend(ModelBackend):
    """ModelBackend whose password check is accounts.services.verify_password: failures are counted and
    audited, the threshold-th locks the ID, and a locked or suspended ID is refused even with its password."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs) -> User | None:
        login_id = username if username is not None else kwargs.get(User.USERNAME_FIELD)
        if login_id is None or password is None:
            return None
        user = User.objects.filter(login_id=login_id).first()
        if user is None:
            return None  # ModelBackend, next in the list, runs the hasher so that timing does not reveal IDs
        # The customer's address (set by certificates' middleware behind the proxy), else the peer's.
        remote_addr = (getattr(request, "client_address", None) or request.META.get("REMOTE_ADDR")) if request else None
        if verify_password(user=user, password=password, remote_addr=remote_addr) == PasswordCheck.ACCEPTED:
            return user
        # Stops authenticate() here: ModelBackend must not get a second, uncounted try at this ID.
        raise PermissionDenied
