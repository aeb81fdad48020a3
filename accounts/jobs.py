"""Recording the successful runs of scheduled jobs (accounts.models.JobRun)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

from .models import JobRun


@contextmanager
def recording(name: str) -> Iterator[dict]:
    """Run the body as job `name`; if it returns without an exception, record the run.

    The body may fill the yielded dict with figures worth keeping (queued e-mails, the CRL's
    number). A task and its management-command twin record under the same name.
    """
    detail: dict = {}
    started_at = timezone.now()
    yield detail
    JobRun.objects.create(
        name=name, started_at=started_at, finished_at=timezone.now(), host=socket.gethostname()[:255], detail=detail
    )
