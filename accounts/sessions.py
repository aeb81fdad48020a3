"""Django's database sessions, read with the request's first statement when one reads it.

Every customer request starts with one statement (certificates.client_cert): the presented
certificate, its owner, the owner's current certificate, and this session's row. The row
then reaches the session store as SessionAsRead, and the store decodes it instead of
sending a second statement. The row is read with Django's own condition (the key, and an
expiry after now), and only by the request it belongs to; nothing is kept between
requests. Without such a row (no certificate presented, or the engine is not this one),
the store reads its row itself, as Django's does, with a statement built once per process.

SESSION_ENGINE = "accounts.sessions", with SessionMiddleware from here in MIDDLEWARE.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.sessions.backends import db
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import connections, router
from django.http import HttpRequest
from django.utils import timezone

from .statements import Columns, fetch_one

# The request attribute on which an earlier middleware leaves the session row it read.
SESSION_AS_READ = "session_as_read"


@dataclass(frozen=True)
class SessionAsRead:
    """The session row of `key` as this request's first statement read it: `data` is None when there was
    none unexpired."""

    key: str
    data: str | None
    expire_date: datetime | None


def session_statement(db_alias: str, alias: str) -> tuple[str, Columns]:
    """What to join to read a session's row: a LEFT JOIN of the session table under `alias` on key and expiry
    (two parameters, in that order), and the row's columns."""
    return _join(db.SessionStore.get_model_class(), db_alias, alias)


@functools.cache
def _join(model, db_alias: str, alias: str) -> tuple[str, Columns]:
    quote = connections[db_alias].ops.quote_name
    columns = Columns(model, alias, db_alias)
    return (
        f"LEFT OUTER JOIN {quote(model._meta.db_table)} {alias} ON {alias}.{quote('session_key')} = %s "
        f"AND {alias}.{quote('expire_date')} > %s",
        columns,
    )


@functools.cache
def _own_statement(model, db_alias: str) -> tuple[str, Columns]:
    quote = connections[db_alias].ops.quote_name
    columns = Columns(model, "s", db_alias)
    return (
        f"SELECT {columns.sql} FROM {quote(model._meta.db_table)} s "  # noqa: S608 (names from the model)
        f"WHERE s.{quote('session_key')} = %s AND s.{quote('expire_date')} > %s",
        columns,
    )


class SessionStore(db.SessionStore):
    def __init__(self, session_key: str | None = None, as_read: SessionAsRead | None = None) -> None:
        super().__init__(session_key)
        self._as_read = as_read

    def _get_session_from_db(self):
        """The unexpired row of this key, or None (and no key), as Django's own store answers."""
        as_read, self._as_read = self._as_read, None  # once: a later load (after a flush, say) reads again
        if as_read is not None and as_read.key == self.session_key:
            if as_read.data is None:
                self._session_key = None
                return None
            return self.model(session_key=as_read.key, session_data=as_read.data, expire_date=as_read.expire_date)
        key = self.session_key  # None when the cookie's was malformed (SessionBase refuses it)
        if key is None:
            return None
        db_alias = router.db_for_read(self.model)
        sql, columns = _own_statement(self.model, db_alias)
        at = connections[db_alias].ops.adapt_datetimefield_value(timezone.now())
        row = fetch_one(db_alias, sql, [key, at])
        if row is None:
            self._session_key = None
            return None
        return columns.instance(db_alias, row)


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, handing the store the row an earlier middleware read for this request, if any."""

    def process_request(self, request: HttpRequest) -> None:
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        as_read = getattr(request, SESSION_AS_READ, None)
        if as_read is not None and issubclass(self.SessionStore, SessionStore):
            request.session = self.SessionStore(session_key, as_read=as_read)
        else:
            request.session = self.SessionStore(session_key)
