"""gunicorn settings for its own TLS (`make run`): the portal, not OpenSSL, judges a certificate's dates.

OpenSSL's default verification fails the handshake on an expired client certificate, and
the browser then shows nothing but a connection error. Here the chain is still verified
(the portal's CA is the only trusted issuer), but the dates are left to the portal, which
refuses an expired or revoked certificate at login with a message saying what to do
(「電子証明書取得」), as it does behind nginx.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME, which Python's ssl module does not name.
X509_V_FLAG_NO_CHECK_TIME = 0x200000


def ssl_context(config, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default_ssl_context_factory()
    context.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    return context
