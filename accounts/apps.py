from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Contracts and IDs")

    def ready(self) -> None:
        from .models import AuditEntry, register_audit_actions

        register_audit_actions(AuditEntry.Action, bank_only=AuditEntry.BANK_ONLY_ACTIONS)
