from django.urls import path

from . import enrollment

urlpatterns = [
    path("renew/", enrollment.renewal_prepare, name="renewal-prepare"),
    path("obtain/", enrollment.obtain_start, name="obtain-start"),
]
