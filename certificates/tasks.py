from celery import shared_task

from .crl import current_crl


@shared_task
def refresh_crl() -> int:
    """Re-sign the CRL before its nextUpdate passes; twin: `manage.py refresh_crl`."""
    return current_crl().number
