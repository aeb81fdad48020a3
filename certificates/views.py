from collections.abc import Callable
from functools import wraps

from cryptography.hazmat.primitives.serialization import Encoding
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from . import ca
from .crl import RootCrlMissing, current_crl, current_root_crl


def _needs_ca(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Before `manage.py init_ca` there is nothing to publish: say so, rather than fail."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        try:
            return view(request)
        except ca.CANotInitialised as error:
            return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")

    return wrapper


@require_GET
@_needs_ca
def crl(request: HttpRequest) -> HttpResponse:
    """The issuing CA's CRL in DER, as the CRL distribution point of every certificate names."""
    revocation_list = current_crl()
    response = HttpResponse(bytes(revocation_list.der), content_type="application/pkix-crl")
    response["Content-Disposition"] = 'attachment; filename="certportal.crl"'
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
@_needs_ca
def root_crl(request: HttpRequest) -> HttpResponse:
    """The root's CRL in DER, signed offline; the issuing CA certificate's CRL distribution point names it."""
    try:
        revocation_list = current_root_crl()
    except RootCrlMissing as error:
        return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(revocation_list.public_bytes(Encoding.DER), content_type="application/pkix-crl")
    response["Content-Disposition"] = 'attachment; filename="certportal-root.crl"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
@_needs_ca
def ca_chain(request: HttpRequest) -> HttpResponse:
    """The CA chain in PEM, for customers to trust the portal's server certificate."""
    return HttpResponse(ca.chain_pem(), content_type="application/x-pem-file")
