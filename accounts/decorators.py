"""View decorators shared by the portal's own form pages."""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def form_posts_only(view):
    """A POST that is not a form (JSON, plain text, no content type) gets 415, not the page as if left empty."""

    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST" and request.content_type not in FORM_CONTENT_TYPES:
            return HttpResponse(_("This page accepts only its own form."), status=415,
                                content_type="text/plain; charset=utf-8")
        return view(request, *args, **kwargs)

    return checked
