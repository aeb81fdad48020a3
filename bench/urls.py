from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/hello", views.hello),
    path("bench/plain-login", views.plain_login),
    path("bench/write-row", views.write_row),
    path("bench/issue", views.issue),
    path("bench/peer-notices", views.peer_notices),
    path("", include("certportal.urls")),
]
