from django.urls import path

from . import views

urlpatterns = [
    path("", views.important_notices, name="important-notices"),
]
