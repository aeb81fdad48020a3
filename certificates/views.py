from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from . import ca
from .crl import current_crl


@require_GET
def crl(request: HttpRequest) -> HttpResponse:
    """The issuing CA's CRL in DER, as the CRL distribution point of every certificate names."""
    revocation_list = current_crl()
    response = HttpResponse(bytes(revocation_list.der), content_type="application/pkix-crl")
    response["Content-Disposition"] = 'attachment; filename="certportal.crl"'
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def ca_chain(request: HttpRequest) -> HttpResponse:
    """The CA chain in PEM, for customers to trust the portal's server certificate."""
    return HttpResponse(ca.chain_pem(), content_type="application/x-pem-file")
