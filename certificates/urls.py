"""Customers' login and logout; the login screen is the portal's front page."""

from django.urls import path

from . import login

urlpatterns = [
    path("", login.login, name="login"),
    path("logout/", login.logout, name="logout"),
]
