"""The bank's notices in the shared cache (Redis): every save, edit or deletion anywhere clears them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.urls import reverse
from django.utils import timezone

from notices.models import NOTICES_CACHE_KEY, Notice
from tests.support.clients import signed_in

pytestmark = [pytest.mark.usefixtures("ca", "behind_proxy")]


@pytest.fixture
def shared_cache(settings, redis_url):
    prefix = f"certportal-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url, "KEY_PREFIX": prefix}}
    yield settings.CACHES["default"]
    cache.delete(NOTICES_CACHE_KEY)  # its own key only: clear() would flush the Redis database other tests share


def another_process(config: dict) -> RedisCache:
    """A cache client of its own, as a gunicorn worker on another node has."""
    return RedisCache(config["LOCATION"], {"KEY_PREFIX": config["KEY_PREFIX"]})


def notice(title: str, **fields) -> Notice:
    return Notice.objects.create(title_ja=title, title_en=title, body_ja="本文", body_en="Body",
                                 published_from=timezone.now() - timedelta(hours=1), **fields)


def page(client) -> str:
    response = client.get(reverse("important-notices"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_notices_page_reads_the_database_twice_once_the_notices_are_cached(shared_cache, bob,
                                                                               django_assert_num_queries):
    notice("メンテナンスのお知らせ")
    client = signed_in(bob)
    assert "メンテナンスのお知らせ" in page(client)
    with django_assert_num_queries(2):  # the session; the certificate with its owner and current certificate
        assert "メンテナンスのお知らせ" in page(client)


def test_a_save_an_edit_and_a_deletion_show_at_once(shared_cache, bob):
    client = signed_in(bob)
    first = notice("旧タイトル")
    assert "旧タイトル" in page(client)
    first.title_ja = "新タイトル"
    first.save()
    assert "新タイトル" in page(client)
    Notice.objects.filter(pk=first.pk).update(title_ja="一括変更")
    assert "一括変更" in page(client)
    Notice.objects.filter(pk=first.pk).delete()  # the admin's "delete selected"
    assert "一括変更" not in page(client)


def test_a_save_clears_what_another_process_stored(shared_cache, bob):
    other = another_process(shared_cache)
    client = signed_in(bob)
    page(client)
    assert other.get(NOTICES_CACHE_KEY) == []  # stored by this process, seen by the other
    notice("全ノードに")
    assert other.get(NOTICES_CACHE_KEY) is None
    assert "全ノードに" in page(client)


def test_a_notice_starting_later_appears_on_time_and_an_ended_one_goes(shared_cache, bob):
    client = signed_in(bob)
    now = timezone.now()
    later = Notice.objects.create(title_ja="あとで", title_en="later", body_ja="b", body_en="b",
                                  published_from=now + timedelta(seconds=2))
    ending = Notice.objects.create(title_ja="まもなく終了", title_en="ending", body_ja="b", body_en="b",
                                   published_from=now - timedelta(hours=1), published_until=now + timedelta(seconds=2))
    content = page(client)
    assert "あとで" not in content and "まもなく終了" in content
    with time_machine.travel(now + timedelta(seconds=3), tick=False):
        assert cache.get(NOTICES_CACHE_KEY) is not None  # still cached: the dates decide
        content = page(client)
    assert later.title_ja in content and ending.title_ja not in content
