"""The important-notices screen (重要なお知らせ), the first screen after login."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from certificates.expiry import newest_valid_certificate, renewal_due_for

from .models import published_notices


@login_required
def important_notices(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    newest = newest_valid_certificate(request.user, now=now)
    used = request.client_certificate
    return render(request, "notices/important.html", {
        "renewal": renewal_due_for(newest, now=now),
        # Renewed but still logged in with the older one: the browser must be restarted to pick the new one.
        "newer_certificate": newest if newest is not None and used is not None and newest.pk != used.pk else None,
        "notices": published_notices(now),
    })
