"""The operators' overview of the estate (/operator/dashboard/): what expires when, how reminders
fared, whether the scheduled jobs ran, and the IDs as CSV.

Every figure comes from the apps' named querysets, the ones the reminder job and the notices
screen use (Certificate.objects.live, expiring_on_japan_days; Reminder.objects.recorded_on_japan_days;
JobRun.objects.last_success_of), counted in Japan-time calendar days. `now` is always an argument,
so that a test can pass the instant it checks the figures at. Charts are SVG geometry computed here
and drawn by the template: nothing is loaded from outside, no script runs. It lives in `notices`,
the one app that may read all three apps' tables.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone, translation

from accounts.japan_time import JAPAN, japan_date, japan_today
from accounts.models import JobRun, User
from certificates.models import Certificate, RevocationList
from certificates.states import certificate_state, with_certificate_state
from notices.models import Reminder

WEEKS = 26
OUTCOME_DAYS = 30
OUTCOMES = (
    Reminder.State.SENT, Reminder.State.DELIVERED, Reminder.State.BOUNCED, Reminder.State.FAILED,
    Reminder.State.CANCELLED,
)


@dataclass(frozen=True)
class Week:
    first: date
    last: date
    count: int


@dataclass(frozen=True)
class DayOutcomes:
    day: date
    counts: dict[str, int]  # state -> reminders recorded that day now in that state

    @property
    def ordered(self) -> list[int]:
        return [self.counts[state] for state in OUTCOMES]


@dataclass(frozen=True)
class JobStatus:
    key: str
    task: str
    last_run: JobRun | None
    age: timedelta | None


@dataclass(frozen=True)
class CrlStatus:
    number: int
    this_update: datetime
    next_update: datetime
    age: timedelta


def expiring_per_week(now: datetime, weeks: int = WEEKS) -> list[Week]:
    """Current, unexpired certificates by the Japan-time week they expire in; week 0 starts today."""
    today = japan_today(now)
    last = today + timedelta(days=7 * weeks - 1)
    per_day = dict(
        Certificate.objects.live(now).expiring_on_japan_days(today, last)
        .annotate(day=TruncDate("not_after", tzinfo=JAPAN))
        .order_by().values_list("day").annotate(count=Count("pk"))
    )
    result = []
    for week in range(weeks):
        first = today + timedelta(days=7 * week)
        days = [first + timedelta(days=offset) for offset in range(7)]
        result.append(Week(first=first, last=days[-1], count=sum(per_day.get(day, 0) for day in days)))
    return result


def reminder_outcomes_per_day(now: datetime, days: int = OUTCOME_DAYS) -> list[DayOutcomes]:
    """Reminders recorded on each of the last `days` Japan-time days (today included), by their state now."""
    today = japan_today(now)
    first = today - timedelta(days=days - 1)
    counts: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    rows = (
        Reminder.objects.recorded_on_japan_days(first, today).filter(state__in=OUTCOMES)
        .annotate(day=TruncDate("created_at", tzinfo=JAPAN))
        .order_by().values_list("day", "state").annotate(count=Count("pk"))
    )
    for day, state, count in rows:
        counts[day][state] = count
    return [DayOutcomes(day=first + timedelta(days=n), counts=dict(counts[first + timedelta(days=n)]))
            for n in range(days)]


def scheduled_jobs(now: datetime) -> list[JobStatus]:
    """Each job of the beat schedule with its last successful run (by beat or by its command twin)."""
    schedule = settings.CELERY_BEAT_SCHEDULE
    last = JobRun.objects.last_success_of(entry["task"] for entry in schedule.values())
    return [
        JobStatus(key=key, task=entry["task"], last_run=last[entry["task"]],
                  age=now - last[entry["task"]].finished_at if last[entry["task"]] else None)
        for key, entry in schedule.items()
    ]


def crl_status(now: datetime) -> CrlStatus | None:
    crl = RevocationList.objects.order_by("-number").only("number", "this_update", "next_update").first()
    if crl is None:
        return None
    return CrlStatus(number=crl.number, this_update=crl.this_update, next_update=crl.next_update,
                     age=now - crl.this_update)


# --- charts: SVG geometry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, float, str]]  # x, y, text: labels under the columns
    maximum: int
    axis_y: float


def stacked_bar_chart(
    columns: list[tuple[str, list[tuple[str, int]]]], *, width: int = 780, height: int = 240, every: int = 1
) -> Chart:
    """Columns of stacked bars: [(column label, [(series, value), ...]), ...]; every `every`th column labelled."""
    top, bottom, left = 16, 36, 8
    plot = height - top - bottom
    maximum = max([sum(value for _series, value in stack) for _label, stack in columns] + [1])
    step = (width - 2 * left) / max(len(columns), 1)
    bars, ticks = [], []
    for index, (label, stack) in enumerate(columns):
        x = left + index * step
        base = top + plot
        for series, value in stack:
            if value:
                bar_height = plot * value / maximum
                base -= bar_height
                bars.append(Bar(x=round(x + step * 0.1, 1), y=round(base, 1), width=round(step * 0.8, 1),
                                height=round(bar_height, 1), series=series, value=value, label=label))
        if index % every == 0:
            ticks.append((round(x + step / 2, 1), top + plot + 16, label))
    return Chart(width=width, height=height, bars=bars, ticks=ticks, maximum=maximum, axis_y=top + plot)


def overview(now: datetime) -> dict:
    """The dashboard's figures and charts as of `now`."""
    weeks = expiring_per_week(now)
    outcomes = reminder_outcomes_per_day(now)
    return {
        "now": now,
        "weeks": weeks,
        "weeks_chart": stacked_bar_chart(
            [(japan_date(week.first), [("expiring", week.count)]) for week in weeks], every=4
        ),
        "outcome_states": [(state, Reminder.State(state).label) for state in OUTCOMES],
        "outcomes": outcomes,
        "outcomes_chart": stacked_bar_chart(
            [(japan_date(day.day), [(state, day.counts[state]) for state in OUTCOMES]) for day in outcomes],
            every=5,
        ),
        "jobs": scheduled_jobs(now),
        "crl": crl_status(now),
    }


# --- the IDs as CSV ------------------------------------------------------------------------------

CSV_HEADER = ("login_id", "contract_number", "contract_name", "role", "id_state", "certificate_state",
              "certificate_valid_until")


def _cell(value: str) -> str:
    """A spreadsheet would run a cell starting with = + - @ as a formula; a leading ' keeps it text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def ids_for_export(now: datetime) -> QuerySet:
    customers = User.objects.filter(contract__isnull=False).select_related("contract").order_by(
        "contract__number", "login_id"
    )
    return with_certificate_state(customers, now)


def id_csv_rows(now: datetime, language: str) -> Iterator[str]:
    """The customers' IDs as CSV lines (UTF-8 with a BOM, which spreadsheet programs need for Japanese).

    Labels in `language`: the rows are written while the response streams, after the request's
    language was reset.
    """
    with translation.override(language):
        yield from _id_csv_rows(now)


def _id_csv_rows(now: datetime) -> Iterator[str]:

    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    yield "\ufeff" + writer.writerow(CSV_HEADER)
    for user in ids_for_export(now).iterator(chunk_size=2000):
        valid_until = user.certificate_valid_until
        yield writer.writerow([_cell(value) for value in (
            user.login_id, user.contract.number, user.contract.name, user.get_role_display(),
            user.get_state_display(), str(certificate_state(user, now).label),
            timezone.localtime(valid_until, JAPAN).isoformat() if valid_until else "",
        )])
