from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("pki/", include("certificates.pki_urls")),
    path("certificate/", include("certificates.enrollment_urls")),
    path("operator/", admin.site.urls),
    path("notices/", include("notices.urls")),
    path("", include("certificates.urls")),
]
