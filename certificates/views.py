import base64
import binascii
from collections.abc import Callable
from functools import wraps

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from . import ca, ocsp
from .crl import RootCrlMissing, current_crl, current_root_crl

# An OCSP request for one certificate is about 100 bytes; anything far larger is not one.
MAX_OCSP_REQUEST_BYTES = 4096


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
    return _crl_response(bytes(current_crl().der), filename="certportal.crl", max_age=300)


@require_GET
@_needs_ca
def root_crl(request: HttpRequest) -> HttpResponse:
    """The root's CRL in DER, signed offline; the issuing CA certificate's CRL distribution point names it."""
    try:
        revocation_list = current_root_crl()
    except RootCrlMissing as error:
        return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")
    return _crl_response(revocation_list.public_bytes(Encoding.DER), filename="certportal-root.crl", max_age=3600)


def _crl_response(der: bytes, *, filename: str, max_age: int) -> HttpResponse:
    response = HttpResponse(der, content_type="application/pkix-crl")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = f"public, max-age={max_age}"
    return response


@require_GET
@_needs_ca
def ca_chain(request: HttpRequest) -> HttpResponse:
    """The CA chain in PEM, for customers to trust the portal's server certificate."""
    return HttpResponse(ca.chain_pem(), content_type="application/x-pem-file")


@require_GET
@_needs_ca
def issuing_ca_certificate(request: HttpRequest) -> HttpResponse:
    """The issuing CA's certificate in DER: the CA-issuers address (AIA) of every client certificate."""
    der = ca.issuing_certificate().public_bytes(serialization.Encoding.DER)
    return HttpResponse(der, content_type="application/pkix-cert")


@csrf_exempt  # a protocol endpoint: no cookies, no session, nothing it changes
@require_http_methods(["GET", "POST"])
def ocsp_responder(request: HttpRequest, encoded: str = "") -> HttpResponse:
    """OCSP over HTTP (RFC 6960 appendix A): POST application/ocsp-request, or GET /pki/ocsp/<base64>.

    The GET form's base64 is URL-encoded by the client; Django has already decoded the path.
    Every answer, errors included, is an OCSP response with HTTP 200, as clients expect.
    """
    if request.method == "POST":
        body = request.body if len(request.body) <= MAX_OCSP_REQUEST_BYTES else b""
    else:
        try:
            body = base64.b64decode(encoded.replace(" ", "+"), validate=True) if encoded else b""
        except (binascii.Error, ValueError):
            body = b""
    try:
        answer = ocsp.respond(body)
    except ca.CANotInitialised:
        answer = ocsp.unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER)
    response = HttpResponse(answer, content_type="application/ocsp-response")
    # The state is read afresh each time; no HTTP cache in between may keep an old answer.
    response["Cache-Control"] = "no-cache"
    return response
