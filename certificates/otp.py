"""One-time codes e-mailed to an ID's registered address (電子証明書取得 proves the ID with one).

Six digits from `secrets`, stored as a keyed hash, valid ten minutes, five entries and it is
spent, usable once. The entries are counted on the code's row in the database, each claimed by
a compare-and-set UPDATE: concurrent entries cannot share one, and a new browser session
(a new cookie) gets no more of them. An ID gets at most CODES_PER_HOUR codes an hour, so the mailbox of
a customer is not flooded by someone who knows the password.
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext_lazy as _

from accounts import audit
from accounts.emails import render_email
from accounts.models import User

from .models import CertificateAction, OneTimeCode

logger = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
CODES_PER_HOUR = 5


class CodeNotDelivered(Exception):
    """The e-mail backend refused the message with the code."""


class CodeRefused(Exception):
    """The code was not accepted; `message` says why in the active language."""

    def __init__(self, code: str, message) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


def _hash(salt: str, code: str) -> str:
    return salted_hmac("certportal.one-time-code", f"{salt}:{code}", algorithm="sha256").hexdigest()


def send_one_time_code(
    *, user: User, purpose: OneTimeCode.Purpose, remote_addr: str | None = None, now: datetime | None = None
) -> OneTimeCode:
    """Create a code for `user` and e-mail it once the transaction commits; earlier live codes stop working."""
    now = now or timezone.now()
    try:
        return _create_and_mail(user=user, purpose=purpose, remote_addr=remote_addr, now=now)
    except CodeNotDelivered:
        # The code row is committed but nobody can know it; it expires unused.
        audit.record(
            CertificateAction.ONE_TIME_CODE_FAILED, subject=user, remote_addr=remote_addr,
            reason="mail_failed", purpose=str(purpose),
        )
        raise CodeRefused(
            "mail_failed", _("The e-mail with the confirmation code could not be sent. Please try again later.")
        ) from None


def _create_and_mail(*, user: User, purpose: OneTimeCode.Purpose, remote_addr: str | None, now: datetime):
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        sent_last_hour = user.one_time_codes.filter(created_at__gt=now - timedelta(hours=1)).count()
        if sent_last_hour >= CODES_PER_HOUR:
            audit.record(
                CertificateAction.ONE_TIME_CODE_FAILED, subject=user, remote_addr=remote_addr,
                reason="too_many_codes", purpose=str(purpose),
            )
            refused = CodeRefused(
                "too_many_codes",
                _("Too many confirmation codes were sent for this ID in the last hour. Please try again later."),
            )
        else:
            refused = None
            user.one_time_codes.filter(used_at__isnull=True, expires_at__gt=now).update(expires_at=now)
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            salt = secrets.token_hex(16)
            record = OneTimeCode.objects.create(
                user=user, purpose=purpose, salt=salt, code_hash=_hash(salt, code),
                created_at=now, expires_at=now + CODE_LIFETIME,
            )
            audit.record(
                CertificateAction.ONE_TIME_CODE_SENT, subject=user, remote_addr=remote_addr,
                purpose=str(purpose), code_id=record.pk,
            )
            transaction.on_commit(lambda: _mail_code(user=user, code=code, expires_at=record.expires_at))
    # Raised outside the block so that the audit entry of the refusal is kept.
    if refused is not None:
        raise refused
    return record


def _mail_code(*, user: User, code: str, expires_at: datetime) -> None:
    message = render_email("one_time_code", {
        "login_id": user.login_id,
        "code": code,
        "minutes": int(CODE_LIFETIME.total_seconds() // 60),
        "expires_at": expires_at,
    }, to=user.email, language=user.language)
    try:
        message.send()
    except Exception as error:  # SMTP refused, the provider's API down: any backend's failure
        logger.exception("the one-time code for %s could not be e-mailed", user.login_id)
        raise CodeNotDelivered from error


def verify_one_time_code(
    *, code_id: int, user: User, entered: str, remote_addr: str | None = None, now: datetime | None = None
) -> OneTimeCode:
    """Accept `entered` for the code `code_id` of `user` once, or raise CodeRefused (every failure audited)."""
    now = now or timezone.now()
    # As typed on a Japanese keyboard: full-width digits (１２３４５６), a space or hyphen in the middle.
    entered = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", entered))
    codes = OneTimeCode.objects.filter(pk=code_id, user=user)
    with transaction.atomic():
        # Claim one of the code's entries: attempts = attempts + 1 WHERE attempts < MAX_ATTEMPTS. Concurrent
        # entries queue on the row and each sees the count the one before it left.
        claimed = codes.filter(used_at__isnull=True, expires_at__gt=now, attempts__lt=MAX_ATTEMPTS).update(
            attempts=F("attempts") + 1
        )
        record = codes.first()
        refusal = _refusal(record, claimed=bool(claimed), entered=entered, now=now)
        # Used once: of two right entries at the same moment, only the first marks it.
        if refusal is None and not codes.filter(used_at__isnull=True).update(used_at=now):
            refusal = _no_longer_usable()
        if refusal is None:
            record.used_at = now
            # Who proved the ID, and from where: the code stands in for the certificate when obtaining one.
            audit.record(CertificateAction.ONE_TIME_CODE_ACCEPTED, subject=user, remote_addr=remote_addr,
                         code_id=code_id, purpose=record.purpose)
        else:
            audit.record(
                CertificateAction.ONE_TIME_CODE_FAILED, subject=user, remote_addr=remote_addr,
                reason=refusal.code, code_id=code_id, attempts=record.attempts if record else None,
            )
    if refusal is not None:
        raise refusal
    return record


def _no_longer_usable() -> CodeRefused:
    return CodeRefused("no_code", _("This confirmation code can no longer be used. Please start again."))


def _refusal(record: OneTimeCode | None, *, claimed: bool, entered: str, now: datetime) -> CodeRefused | None:
    """Why `entered` is refused; `claimed` says whether this entry got one of the code's attempts."""
    if record is None or record.used_at is not None:
        return _no_longer_usable()
    if not claimed:
        if record.attempts >= MAX_ATTEMPTS:
            return CodeRefused(
                "too_many_attempts",
                _("The confirmation code was entered wrongly too many times. Please start again to receive a new "
                  "code."),
            )
        if now >= record.expires_at:
            return CodeRefused(
                "expired", _("The confirmation code has expired. Please start again to receive a new code.")
            )
        return _no_longer_usable()
    if not (entered.isdigit() and len(entered) == CODE_DIGITS) or not constant_time_compare(
        _hash(record.salt, entered), record.code_hash
    ):
        left = MAX_ATTEMPTS - record.attempts
        if left <= 0:
            return CodeRefused(
                "wrong_code",
                _("The confirmation code is not correct. It can no longer be used; please start again."),
            )
        return CodeRefused(
            "wrong_code",
            _("The confirmation code is not correct. You can try %(left)s more time(s).") % {"left": left},
        )
    return None
