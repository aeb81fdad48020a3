"""Both admin sites' changelist actions refuse selected IDs that are not IDs (400, not 500).

Django's admin passes the posted `_selected_action` values straight to
`queryset.filter(pk__in=...)`, which raises ValueError (or, past the column's range, a
database error) for "abc" or a 30-digit number: a 500 from a crafted POST. Each value is
cleaned with the model's primary-key field first, before the admin sees the request.
It lives in `accounts`, the lowest app, whose models both sites list.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


class AdminSelectionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        model_admin = getattr(view_func, "model_admin", None)  # set by ModelAdmin.get_urls on its views
        if model_admin is None or request.method != "POST":
            return None
        primary_key = model_admin.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                primary_key.clean(value, None)
        except ValidationError:
            return HttpResponseBadRequest("The selection is not a list of IDs.",
                                          content_type="text/plain; charset=utf-8")
        return None
