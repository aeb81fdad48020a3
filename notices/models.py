"""The bank's notices shown on the important-notices screen (重要なお知らせ)."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class NoticeQuerySet(models.QuerySet):
    def published(self, now: datetime | None = None) -> NoticeQuerySet:
        now = now or timezone.now()
        return self.filter(Q(published_until__isnull=True) | Q(published_until__gt=now), published_from__lte=now)


class Notice(models.Model):
    title_ja = models.CharField(_("title (Japanese)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200)
    body_ja = models.TextField(_("body (Japanese)"))
    body_en = models.TextField(_("body (English)"))
    published_from = models.DateTimeField(_("published from"), default=timezone.now)
    published_until = models.DateTimeField(_("published until"), null=True, blank=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-published_from"]
        constraints = [
            models.CheckConstraint(
                name="notice_period_is_ordered",
                condition=Q(published_until__isnull=True) | Q(published_until__gt=models.F("published_from")),
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        return self.title_en if get_language() == "en" else self.title_ja

    @property
    def body(self) -> str:
        return self.body_en if get_language() == "en" else self.body_ja
