from django.contrib import admin
from django.urls import include, path

from certificates import contract_admin
from notices import metrics

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("pki/", include("certificates.pki_urls")),
    path("certificate/", include("certificates.enrollment_urls")),
    path("operator/", admin.site.urls),
    # Prometheus, from the internal side only (notices.metrics, deploy/nginx.conf).
    path("metrics", metrics.metrics_view, name="metrics"),
    # E-mail providers' delivery-tracking webhooks (anymail), refused without ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include("notices.webhooks")),
    path("manage/", contract_admin.site.urls),
    path("notices/", include("notices.urls")),  # the screen after every login, before the catch-all prefixes
    path("", include("accounts.urls")),
    path("", include("certificates.urls")),
]
