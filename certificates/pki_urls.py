from django.urls import path

from . import views

urlpatterns = [
    path("crl", views.crl, name="crl"),
    path("root.crl", views.root_crl, name="root-crl"),
    path("ca.pem", views.ca_chain, name="ca-chain"),
    path("ca.crt", views.issuing_ca_certificate, name="issuing-ca"),
    path("ocsp", views.ocsp_responder, name="ocsp"),
    path("ocsp/<path:encoded>", views.ocsp_responder, name="ocsp-get"),
]
