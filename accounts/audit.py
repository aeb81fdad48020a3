"""Writing the audit log: one call, inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from .models import AuditEntry, User


def record(
    action: str,
    *,
    subject: User | None = None,
    actor: User | None = None,
    certificate_serial: str = "",
    remote_addr: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction whose change it records.

    `action` is one of an app's registered actions (AuditEntry.Action, CertificateAction, NoticeAction).
    """
    return AuditEntry.objects.create(
        action=action,
        subject=subject,
        actor=actor,
        contract_id=subject.contract_id if subject is not None else None,
        certificate_serial=certificate_serial,
        remote_addr=remote_addr,
        detail={key: value for key, value in detail.items() if value is not None},
    )
