"""The important-notices screen (重要なお知らせ), the first screen after login."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from certificates.expiry import renewal_due_for
from certificates.models import Certificate

from .models import Notice


@login_required
def important_notices(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    # The plain manager filtered by owner builds less than the related manager, on every login.
    newest = Certificate.objects.filter(owner=request.user).newest_valid(now).first()
    used = request.client_certificate
    return render(request, "notices/important.html", {
        "renewal": renewal_due_for(newest, now=now),
        # Renewed but still logged in with the older one: the browser must be restarted to pick the new one.
        "newer_certificate": newest if newest is not None and used is not None and newest.pk != used.pk else None,
        "notices": list(Notice.objects.published(now)),  # evaluated here, not while rendering
    })
