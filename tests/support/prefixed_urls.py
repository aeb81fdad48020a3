"""A URLconf with language-prefixed URLs (i18n_patterns), which the portal does not use: for the locale tests."""

from django.conf.urls.i18n import i18n_patterns
from django.http import HttpResponse
from django.urls import path

urlpatterns = i18n_patterns(path("page/", lambda request: HttpResponse("page"), name="prefixed-page"))
