"""The bank's notices are read from the database on each view: a save, an edit or a deletion anywhere shows at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from notices.models import Notice, published_notices
from tests.support.clients import signed_in

pytestmark = [pytest.mark.usefixtures("ca", "behind_proxy")]


def notice(title: str, **fields) -> Notice:
    return Notice.objects.create(title_ja=title, title_en=title, body_ja="本文", body_en="Body",
                                 published_from=timezone.now() - timedelta(hours=1), **fields)


def page(client) -> str:
    response = client.get(reverse("important-notices"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_save_an_edit_and_a_deletion_show_at_once(bob):
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


def test_a_notice_starting_later_appears_on_time_and_an_ended_one_goes(bob):
    client = signed_in(bob)
    now = timezone.now()
    later = Notice.objects.create(title_ja="あとで", title_en="later", body_ja="b", body_en="b",
                                  published_from=now + timedelta(seconds=2))
    ending = Notice.objects.create(title_ja="まもなく終了", title_en="ending", body_ja="b", body_en="b",
                                   published_from=now - timedelta(hours=1), published_until=now + timedelta(seconds=2))
    content = page(client)
    assert "あとで" not in content and "まもなく終了" in content
    with time_machine.travel(now + timedelta(seconds=3), tick=False):
        content = page(client)
    assert later.title_ja in content and ending.title_ja not in content


def test_the_statement_answers_as_the_queryset_does(db):
    """published_notices (a statement built once) and Notice.objects.published (the ORM) agree, newest first."""
    now = timezone.now()
    for hours, until in ((5, None), (3, now + timedelta(hours=1)), (2, now - timedelta(minutes=1)), (-1, None)):
        Notice.objects.create(title_ja=f"{hours}", title_en=f"{hours}", body_ja="b", body_en="b",
                              published_from=now - timedelta(hours=hours), published_until=until)
    read = published_notices(now)
    assert [n.title_ja for n in read] == ["3", "5"]
    assert [n.pk for n in read] == [n.pk for n in Notice.objects.published(now).order_by("-published_from")]
    assert all(n.published_from.tzinfo is not None for n in read)
