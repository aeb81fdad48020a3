import logging

from celery import shared_task

from accounts.jobs import recording

from .ca import IssuingCAStopped
from .crl import current_crl
from .ocsp import renew_responder

REFRESH_CRL = "certificates.tasks.refresh_crl"


@shared_task(name=REFRESH_CRL)
def refresh_crl() -> int:
    """Re-sign the CRL before its nextUpdate passes; twin: `manage.py refresh_crl`."""
    with recording(REFRESH_CRL) as detail:
        detail["crl_number"] = current_crl().number
    return detail["crl_number"]


@shared_task
def renew_ocsp_responder() -> bool:
    """Certify a new OCSP responder key when a third of its lifetime is left; twin: `manage.py renew_ocsp_responder`."""
    try:
        return renew_responder()[1]
    except IssuingCAStopped as stopped:
        # Said once an hour in the worker's log until the bank certifies a new issuing CA.
        logging.getLogger(__name__).error("OCSP responder not renewed: %s", stopped)
        return False
