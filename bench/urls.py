from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/plain-login", views.plain_login),
    path("bench/peer-notices", views.peer_notices),
    path("", include("certportal.urls")),
]
