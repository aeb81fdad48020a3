"""Django's PostgreSQL backend, with a health check that costs no round trip.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first statement of every request
on a kept connection: one round trip, and a wake-up of the server process, on every page view
and every step of a login. An idle connection has nothing to read unless the server is ending
it (a restart, an idle timeout, pg_terminate_backend: an error message, then the close) or a
notification came. So an idle socket with nothing to read is usable as it is; anything to read
(or a hang-up) is checked the way Django does, with `SELECT 1`, and a dead connection is then
replaced before the request uses it, exactly as before.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return True
        return super().is_usable()
