"""accounts.sessions: Django's database sessions, taking a row the request already read, and only that request's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.sessions import SessionAsRead, SessionStore

pytestmark = pytest.mark.django_db


def store_given(key: str, as_read: SessionAsRead) -> SessionStore:
    session = SessionStore(key)
    session.take_row_as_read(as_read)
    return session


@pytest.fixture
def stored() -> SessionStore:
    session = SessionStore()
    session["greeting"] = "こんにちは"
    session.save()
    return session


def test_a_row_as_read_is_decoded_without_a_statement(stored, django_assert_num_queries):
    as_read = SessionAsRead(stored.session_key, Session.objects.get(pk=stored.session_key))
    with django_assert_num_queries(0):
        assert store_given(stored.session_key, as_read)["greeting"] == "こんにちは"


def test_no_row_as_read_means_no_session(stored, django_assert_num_queries):
    with django_assert_num_queries(0):
        session = store_given(stored.session_key, SessionAsRead(stored.session_key, None))
        assert session.get("greeting") is None
    assert session.session_key is None  # as Django's own store: a new key when saved


def test_a_row_read_for_another_key_is_not_used(stored):
    forged = SessionStore()
    forged["greeting"] = "forged"
    forged.save()
    as_read = SessionAsRead(forged.session_key, Session.objects.get(pk=forged.session_key))
    assert store_given(stored.session_key, as_read)["greeting"] == "こんにちは"


def test_without_a_row_the_store_reads_its_own_as_django_does(stored, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert SessionStore(stored.session_key)["greeting"] == "こんにちは"
    Session.objects.filter(pk=stored.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = SessionStore(stored.session_key)
    assert expired.get("greeting") is None and expired.session_key is None
