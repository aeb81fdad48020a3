from django.contrib import admin
from django.urls import include, path

from certificates import contract_admin
from notices import metrics

urlpatterns = [
    # First: the screen after every login. Django's resolver raises (and catches) an exception for
    # each include whose prefix the path does not start with, so the busiest page is tried first.
    path("notices/", include("notices.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("pki/", include("certificates.pki_urls")),
    path("certificate/", include("certificates.enrollment_urls")),
    path("operator/", admin.site.urls),
    # Prometheus, from the internal side only (notices.metrics, deploy/nginx.conf).
    path("metrics", metrics.metrics_view, name="metrics"),
    # E-mail providers' delivery-tracking webhooks (anymail), refused without ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include("notices.webhooks")),
    path("manage/", contract_admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("certificates.urls")),
]
