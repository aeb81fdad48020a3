from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NoticesConfig(AppConfig):
    name = "notices"
    verbose_name = _("Notices and reminders")

    def ready(self) -> None:
        from accounts.models import register_audit_actions

        from . import webhooks  # noqa: F401 (connects the anymail tracking receiver)
        from .models import NoticeAction

        register_audit_actions(NoticeAction)
