"""Attempt budgets: counted exactly, per key, in fixed windows that end; old windows are deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import AttemptCounter
from accounts.throttle import Budget, Scope, address_key, take_attempt

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

BUDGET = Budget(limit=3, window=timedelta(minutes=15))
NINE = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def attempts(key: str, times: int, now: datetime) -> list[bool]:
    return [take_attempt(scope=Scope.LOGIN_ADDRESS, key=key, budget=BUDGET, now=now).allowed for _ in range(times)]


def test_the_limit_th_attempt_is_the_last_one_counted_in_a_window():
    assert attempts("192.0.2.1", 5, NINE + timedelta(minutes=3)) == [True, True, True, False, False]
    assert AttemptCounter.objects.get().attempts == 3  # refused attempts are not counted beyond the limit


def test_each_key_and_scope_has_its_own_budget():
    attempts("192.0.2.1", 3, NINE)
    assert attempts("192.0.2.2", 1, NINE) == [True]
    assert take_attempt(scope=Scope.OBTAIN_ADDRESS, key="192.0.2.1", budget=BUDGET, now=NINE).allowed


def test_the_next_window_starts_afresh_and_says_when_it_ends():
    attempts("192.0.2.1", 3, NINE + timedelta(minutes=14))
    refused = take_attempt(scope=Scope.LOGIN_ADDRESS, key="192.0.2.1", budget=BUDGET, now=NINE + timedelta(minutes=14))
    assert refused.retry_after_seconds(NINE + timedelta(minutes=14)) == 60
    assert attempts("192.0.2.1", 1, NINE + timedelta(minutes=15)) == [True]


def test_a_right_attempt_given_back_frees_its_place():
    take_attempt(scope=Scope.LOGIN_ADDRESS, key="192.0.2.1", budget=BUDGET, now=NINE).give_back()
    assert attempts("192.0.2.1", 4, NINE) == [True, True, True, False]


def test_windows_that_ended_are_deleted_as_new_ones_start():
    attempts("192.0.2.1", 1, NINE)
    attempts("192.0.2.2", 1, NINE + timedelta(minutes=15))
    attempts("192.0.2.3", 1, NINE + timedelta(minutes=30))
    assert sorted(AttemptCounter.objects.values_list("key", flat=True)) == ["192.0.2.2", "192.0.2.3"]


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # the whole /64 one subscriber usually gets
    ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
])
def test_addresses_are_counted_by_ipv4_address_or_ipv6_slash_64(address, key):
    assert address_key(address) == key
