"""Baselines measured in the same run and on the same server as the portal's own views."""

from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from certificates.models import Certificate
from notices.models import Notice


@csrf_exempt
def plain_login(request: HttpRequest) -> HttpResponse:
    """A password-only session, with no certificate binding: the baseline of a logged-in page."""
    # Django's stock ModelBackend checks the password (the portal's own backends refuse a password alone).
    user = ModelBackend().authenticate(request, username=request.POST["login_id"], password=request.POST["password"])
    if user is None:
        return HttpResponseForbidden()
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("ok")


@login_required
def peer_notices(request: HttpRequest) -> HttpResponse:
    """The notices page's fair peer: a stock Django page with a database session doing the same reads.

    Stock authentication loads the user; then the ID's newest certificate and the published
    notices, rendered in a template like the notices page's.
    """
    now = timezone.now()
    certificate = Certificate.objects.filter(owner=request.user).order_by("-not_after").first()
    return render(request, "bench/peer.html", {"certificate": certificate,
                                               "notices": list(Notice.objects.published(now))})
