from django.urls import path

from . import views

urlpatterns = [
    path("crl", views.crl, name="crl"),
    path("ca.pem", views.ca_chain, name="ca-chain"),
]
