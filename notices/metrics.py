"""Prometheus metrics for the bank's monitoring (prometheus-client), at /metrics on the internal side only.

Two kinds of figures:
- request latencies, a histogram each gunicorn worker observes in RequestLatencyMiddleware.
  With several workers, set PROMETHEUS_MULTIPROC_DIR (an empty directory, emptied at each start)
  and prometheus-client's multiprocess mode sums the workers' files at scrape time;
- the estate (certificates and reminders by state, each scheduled job's last success, the CRL's
  next update), read from the database at scrape time by EstateCollector through the same
  named querysets as the dashboard, so that every worker answers the same numbers.

Who may read them: nginx's public servers answer 404 for /metrics and mark every request they
pass on as public (X-Certportal-Listener), so Django refuses a scrape relayed by a trusted proxy
unless the bank's internal server marked it internal; CERTPORTAL_METRICS_TOKEN adds a bearer token.
It lives in `notices`, the one app that may count every app's rows.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# Not in the default registry: each scrape builds its own (multiprocess mode reads files instead).
REQUEST_LATENCY = Histogram(
    "certportal_request_duration_seconds",
    "Time from the request reaching Django to its response, by URL name, method and status.",
    ["view", "method", "status"],
    registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RequestLatencyMiddleware:
    """Observes every response's latency, labelled by URL name (bounded), never by raw path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        REQUEST_LATENCY.labels(
            view=match.view_name if match is not None else "<unresolved>",
            method=request.method if request.method in METHODS else "other",
            status=str(response.status_code),
        ).observe(time.perf_counter() - started)
        return response


class EstateCollector(Collector):
    """Figures read from the database when Prometheus scrapes (a few indexed counts)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from accounts.models import JobRun
        from certificates.models import Certificate, RevocationList
        from notices.models import Reminder

        now = timezone.now()
        certificates = GaugeMetricFamily(
            "certportal_certificates", "Client certificates by state.", labels=["state"]
        )
        for state in Certificate.State:
            certificates.add_metric([state.value], Certificate.objects.in_state(state, now).count())
        yield certificates

        live = GaugeMetricFamily(
            "certportal_certificates_live", "Each ID's current certificate, unexpired (what reminders are about)."
        )
        live.add_metric([], Certificate.objects.live(now).count())
        yield live

        reminders = GaugeMetricFamily("certportal_reminders", "Reminder e-mails by state.", labels=["state"])
        counts = dict(Reminder.objects.order_by().values_list("state").annotate(count=Count("pk")))
        for state in Reminder.State:
            reminders.add_metric([state.value], counts.get(state.value, 0))
        yield reminders

        failing = GaugeMetricFamily(
            "certportal_reminders_failing_over_an_hour",
            "Reminder e-mails still owed whose every attempt for an hour or more has failed (alert on > 0).",
        )
        failing.add_metric([], Reminder.objects.failing_for(1).count())
        yield failing

        jobs = GaugeMetricFamily(
            "certportal_job_last_success_timestamp_seconds",
            "When each scheduled job last finished successfully (Unix time); absent if it never did.",
            labels=["job"],
        )
        schedule = settings.CELERY_BEAT_SCHEDULE
        last = JobRun.objects.last_success_of(entry["task"] for entry in schedule.values())
        for key, entry in schedule.items():
            if last[entry["task"]] is not None:
                jobs.add_metric([key], last[entry["task"]].finished_at.timestamp())
        yield jobs

        crl = RevocationList.objects.order_by("-number").only("this_update", "next_update").first()
        if crl is not None:
            next_update = GaugeMetricFamily(
                "certportal_crl_next_update_timestamp_seconds", "The newest CRL's nextUpdate (Unix time)."
            )
            next_update.add_metric([], crl.next_update.timestamp())
            yield next_update
            this_update = GaugeMetricFamily(
                "certportal_crl_this_update_timestamp_seconds", "When the newest CRL was signed (Unix time)."
            )
            this_update.add_metric([], crl.this_update.timestamp())
            yield this_update


def registry() -> CollectorRegistry:
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(scrape)  # every worker's histogram, summed
    else:
        scrape.register(REQUEST_LATENCY)
    scrape.register(EstateCollector())
    return scrape


def from_internal_side(request: HttpRequest) -> bool:
    """Not relayed by nginx's public servers: a trusted proxy must have marked the request internal."""
    if request.META.get("REMOTE_ADDR") not in settings.TRUSTED_PROXY_ADDRESSES:
        return True  # straight to gunicorn, which listens on a private address
    return request.META.get(settings.METRICS_LISTENER_HEADER) == "internal"


def has_token(request: HttpRequest) -> bool:
    if not settings.METRICS_TOKEN:
        return True
    scheme, _space, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not from_internal_side(request):
        raise Http404
    if not has_token(request):
        return HttpResponse("bearer token required\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="certportal metrics"'})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})
