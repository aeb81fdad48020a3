"""The Celery application: tasks are discovered in the apps, the schedule lives in settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certportal.settings")

app = Celery("certportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
