"""Obtaining (電子証明書取得) and renewing (更新) a certificate in the browser. Placeholder: being built."""

from django.http import Http404, HttpRequest, HttpResponse


def renewal_prepare(request: HttpRequest) -> HttpResponse:
    raise Http404


def obtain_start(request: HttpRequest) -> HttpResponse:
    raise Http404
