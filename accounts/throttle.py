"""Attempt budgets that no one can reset: per client address, and per login ID as typed.

They bound what the ID's own lock-out cannot: attempts made without the ID's certificate
(the login screen) or with no certificate by nature (電子証明書取得). Counting one attempt
is one compare-and-set UPDATE (attempts = attempts + 1 WHERE attempts < limit), so the
count is exact with any number of gunicorn workers, and it lives in the database, which
every process shares; a new cookie or a new connection does not reset it.

Windows are fixed (they start at multiples of their length since the epoch), so at most
twice the limit fits across a window's edge.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import AttemptCounter


class Scope(enum.StrEnum):
    LOGIN_ADDRESS = "login_address"  # logins without the ID's own valid certificate, per address_key()
    OBTAIN_ADDRESS = "obtain_address"  # 電子証明書取得 passwords, per address_key()
    OBTAIN_ID = "obtain_id"  # 電子証明書取得 passwords, per login ID as typed (known or not)


@dataclass(frozen=True)
class Budget:
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Attempt:
    """One attempt counted (`allowed`), or refused because the window's budget is spent."""

    scope: Scope
    key: str
    window_start: datetime
    window_end: datetime
    allowed: bool

    def retry_after_seconds(self, now: datetime | None = None) -> int:
        return max(1, math.ceil((self.window_end - (now or timezone.now())).total_seconds()))

    def give_back(self) -> None:
        """Return a counted attempt (it turned out right), so that only failures use up the budget."""
        if self.allowed:
            AttemptCounter.objects.filter(
                scope=self.scope, key=self.key, window_start=self.window_start, attempts__gt=0
            ).update(attempts=F("attempts") - 1)


def _window_start(now: datetime, window: timedelta) -> datetime:
    length = int(window.total_seconds())
    epoch_seconds = int(now.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % length, tz=UTC)


def address_key(address: str | None) -> str:
    """The key of a client address: IPv4 as it is, IPv6 by its /64, which one subscriber usually holds whole."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def take_attempt(*, scope: Scope, key: str | None, budget: Budget, now: datetime | None = None) -> Attempt:
    """Count one attempt for `key` in `scope`, or refuse it once `budget.limit` were counted in this window."""
    now = now or timezone.now()
    start = _window_start(now, budget.window)
    key = (key or "unknown")[:64]
    counter, created = AttemptCounter.objects.get_or_create(scope=scope, key=key, window_start=start)
    if created:
        # A new window for this key: the scope's windows that ended before the previous one are of no use.
        AttemptCounter.objects.filter(scope=scope, window_start__lt=start - budget.window).delete()
    counted = AttemptCounter.objects.filter(pk=counter.pk, attempts__lt=budget.limit).update(
        attempts=F("attempts") + 1
    )
    return Attempt(scope=scope, key=key, window_start=start, window_end=start + budget.window, allowed=bool(counted))


def address_budget() -> Budget:
    """Per client address: logins without the ID's certificate, and 電子証明書取得's passwords (each their own)."""
    return Budget(settings.ADDRESS_ATTEMPT_LIMIT, timedelta(minutes=settings.ADDRESS_ATTEMPT_WINDOW_MINUTES))


def obtain_id_budget() -> Budget:
    """Per login ID as typed: 電子証明書取得's wrong passwords, apart from the ID's login lock."""
    return Budget(settings.OBTAIN_ID_ATTEMPT_LIMIT, timedelta(minutes=settings.OBTAIN_ID_ATTEMPT_WINDOW_MINUTES))


def too_many_from_this_address() -> str:
    return _("Too many attempts from this network address. Please wait %(minutes)s minutes and try again.") % {
        "minutes": settings.ADDRESS_ATTEMPT_WINDOW_MINUTES
    }
