from celery import shared_task

from .crl import current_crl
from .ocsp import renew_responder


@shared_task
def refresh_crl() -> int:
    """Re-sign the CRL before its nextUpdate passes; twin: `manage.py refresh_crl`."""
    return current_crl().number


@shared_task
def renew_ocsp_responder() -> bool:
    """Certify a new OCSP responder key when a third of its lifetime is left; twin: `manage.py renew_ocsp_responder`."""
    return renew_responder()[1]
