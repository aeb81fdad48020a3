"""Statements the ORM would compile anew on every request, written once per process from the models' metadata.

For the few reads on every request or issuance (the presented certificate, the CA row, the ID
locked for an issuance): building and compiling a queryset costs several times what sending
the same SQL costs. Only the models' own table and column names are written into the SQL;
every value is a parameter. Rows come back as model instances, through the same database
converters the ORM applies.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Model


class Columns:
    """A model's table under `alias` in a hand-written statement: its columns to SELECT (`sql`), the
    table to name in FROM or JOIN (`table`), one column by name (`columns["not_after"]`), and a row
    of `sql` turned back into an instance."""

    def __init__(self, model: type[Model], alias: str, db: str) -> None:
        connection = connections[db]
        fields = model._meta.concrete_fields
        self.model, self.width, self.alias = model, len(fields), alias
        self._quote = connection.ops.quote_name
        self.table = f"{self._quote(model._meta.db_table)} {alias}"
        self.sql = ", ".join(self[field.column] for field in fields)
        self.names = [field.attname for field in fields]
        self.converters = []
        for index, field in enumerate(fields):
            column = field.get_col(alias)
            converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            if converters:
                self.converters.append((index, converters, column))

    def __getitem__(self, column: str) -> str:
        return f"{self.alias}.{self._quote(column)}"

    def instance(self, db: str, values: list) -> Model:
        connection = connections[db]
        for index, converters, column in self.converters:
            for converter in converters:
                values[index] = converter(values[index], column, connection)
        return self.model.from_db(db, self.names, values)


def fetch_one(db: str, sql: str, params: list) -> list | None:
    with connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else list(row)


def fetch_all(db: str, sql: str, params: list) -> list[list]:
    with connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        return [list(row) for row in cursor.fetchall()]
