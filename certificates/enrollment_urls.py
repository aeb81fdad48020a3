from django.urls import path

from . import enrollment

urlpatterns = [
    path("renew/", enrollment.renewal_prepare, name="renewal-prepare"),
    path("renew/start/", enrollment.renewal_start, name="renewal-start"),
    path("renew/issue/", enrollment.renewal_issue, name="renewal-issue"),
    path("renew/done/<str:serial>/", enrollment.renewal_done, name="renewal-done"),
    path("obtain/", enrollment.obtain_start, name="obtain-start"),
    path("obtain/code/", enrollment.obtain_code, name="obtain-code"),
    path("obtain/enroll/", enrollment.obtain_enroll, name="obtain-enroll"),
    path("obtain/issue/", enrollment.obtain_issue, name="obtain-issue"),
    path("obtain/done/<str:serial>/", enrollment.obtain_done, name="obtain-done"),
]
