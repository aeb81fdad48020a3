from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = _("Certificates")

    def ready(self) -> None:
        from accounts.models import register_audit_actions

        from . import checks  # noqa: F401 (registers the deploy checks)
        from .models import BANK_ONLY_ACTIONS, CertificateAction

        register_audit_actions(CertificateAction, bank_only=BANK_ONLY_ACTIONS)
