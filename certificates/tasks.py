from celery import shared_task

from accounts.jobs import recording

from .crl import current_crl

REFRESH_CRL = "certificates.tasks.refresh_crl"


@shared_task(name=REFRESH_CRL)
def refresh_crl() -> int:
    """Re-sign the CRL before its nextUpdate passes; twin: `manage.py refresh_crl`."""
    with recording(REFRESH_CRL) as detail:
        detail["crl_number"] = current_crl().number
    return detail["crl_number"]
