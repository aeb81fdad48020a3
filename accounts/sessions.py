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
from typing import TYPE_CHECKING

from django.contrib.sessions.backends import db
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import connections, router
from django.http import HttpRequest
from django.utils import timezone

from .statements import Columns, fetch_one

if TYPE_CHECKING:
    from django.contrib.sessions.models import Session

# The request attribute on which an earlier middleware leaves the session row it read.
SESSION_AS_READ = "session_as_read"


@dataclass(frozen=True)
class SessionAsRead:
    """The session row of `key` as this request's first statement read it: None when there was none unexpired."""

    key: str
    row: Session | None


def session_statement(db_alias: str, alias: str) -> tuple[str, Columns]:
    """What to join to read a session's row: a LEFT JOIN of the session table under `alias` on key and expiry
    (two parameters, in that order), and the row's columns."""
    columns = _columns(db_alias, alias)
    return f"LEFT OUTER JOIN {columns.table} ON {_unexpired_row_of_key(columns)}", columns


@functools.cache
def _columns(db_alias: str, alias: str) -> Columns:
    return Columns(db.SessionStore.get_model_class(), alias, db_alias)


def _unexpired_row_of_key(s: Columns) -> str:
    """Django's own condition for a session (db.SessionStore): this key, an expiry after now."""
    return f"{s['session_key']} = %s AND {s['expire_date']} > %s"


@functools.cache
def _own_statement(db_alias: str) -> tuple[str, Columns]:
    s = _columns(db_alias, "s")
    return f"SELECT {s.sql} FROM {s.table} WHERE {_unexpired_row_of_key(s)}", s  # noqa: S608 (names from the model)


class SessionStore(db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._as_read: SessionAsRead | None = None

    def take_row_as_read(self, as_read: SessionAsRead) -> None:
        """Load from `as_read` instead of the database, if it is this session's row."""
        self._as_read = as_read

    def _get_session_from_db(self) -> Session | None:
        """The unexpired row of this key, or None (and no key), as Django's own store answers."""
        as_read, self._as_read = self._as_read, None  # once: a later load (after a flush, say) reads again
        if as_read is not None and as_read.key == self.session_key:
            row = as_read.row
        else:
            db_alias = router.db_for_read(self.model)
            sql, columns = _own_statement(db_alias)
            at = connections[db_alias].ops.adapt_datetimefield_value(timezone.now())
            values = fetch_one(db_alias, sql, [self.session_key, at])
            row = None if values is None else columns.instance(db_alias, values)
        if row is None:
            self._session_key = None
        return row


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, handing the store the row an earlier middleware read for this request, if any."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        as_read = getattr(request, SESSION_AS_READ, None)
        if as_read is not None and isinstance(request.session, SessionStore):
            request.session.take_row_as_read(as_read)
