from django.contrib import admin

from .models import Notice


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ("title_ja", "title_en", "published_from", "published_until")
    search_fields = ("title_ja", "title_en")
