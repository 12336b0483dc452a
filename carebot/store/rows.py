"""The per-message path's statements without the ORM's work: new rows written with one prepared
INSERT instead of the unit of work (:func:`insert_row`), and updates run on the session's
connection (:func:`execute_plain`).

``session.add(row); await session.flush()`` works out what changed in the whole session, orders
it, and builds the statement again each time: most of a message's store time went there, while
the INSERT itself takes SQLite some microseconds. :func:`insert_row` writes one new mapped
object with the table's INSERT ... RETURNING id, compiled once, and sets its id: the object
stays outside the session (transient), so it is for rows that are written once and only read
afterwards (a message, its decision, its outbox row), never for one changed later in the same
transaction.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Executable, Result, Table, insert, inspect, literal
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.store.prepared import Prepared, flushed

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Column:
    attribute: str
    name: str
    default: Callable[[], Any] | None  # the column's Python default, computed here
    server_default: bool  # left to the database when the value is None


@cache
def _columns(cls: type) -> tuple[_Column, ...]:
    """The columns of a mapped class that an INSERT writes (not a numbered ``id``)."""
    mapper: Any = inspect(cls)
    found = []
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if column.primary_key and column.name == "id":
            continue  # numbered by the database
        default: Callable[[], Any] | None = None
        if column.default is not None:
            if column.default.is_scalar:
                default = functools.partial(copy.copy, column.default.arg)
            elif column.default.is_callable:  # SQLAlchemy's wrapper: takes its context
                default = functools.partial(column.default.arg, None)
            else:
                raise TypeError(
                    f"insert_row() cannot compute the default of {column} (SQL or a sequence): "
                    "give the column a value, or write the row with session.add()"
                )
        found.append(_Column(attr.key, column.name, default, column.server_default is not None))
    return tuple(found)


@cache
def _insert(table: Table, columns: tuple[str, ...]) -> Prepared:
    """The table's INSERT of ``columns``, returning the new ``id`` where it numbers its rows."""
    statement = insert(table)
    if "id" in table.c:
        statement = statement.returning(table.c.id)
    return Prepared(statement, column_keys=columns)


def fixed(value: str) -> ColumnElement[str]:
    """``value`` written into the statement's SQL instead of bound as a parameter, for the
    constants that partial indexes are defined on (an outbox row's ``status = 'pending'``, a
    conversation's ``state != 'closed'``). SQLite re-prepares a statement at every execution
    when a bound parameter decides whether a partial index applies: measured here, 53 us for
    the open-conversation query with the state bound against 24 us with it written in, and 18 us
    against 3 us for "a reply of this conversation is pending"."""
    return literal(value, literal_execute=True)


async def execute_plain(
    session: AsyncSession, statement: Executable, params: dict[str, Any] | None = None
) -> Result[*tuple[Any, ...]]:
    """``statement`` (Core, e.g. an UPDATE ... RETURNING) in the session's transaction, without
    the ORM's handling of it (the session's objects are not updated to match)."""
    await flushed(session)
    connection = await session.connection()
    return await connection.execute(statement, params)


async def insert_row(session: AsyncSession, row: T) -> T:
    """Write ``row`` (a new, transient mapped object) in the session's transaction and set its
    id (where its table numbers rows). Pending ORM changes of the session are flushed first,
    so rows keep their order."""
    table = inspect(type(row)).local_table
    assert isinstance(table, Table)
    values: dict[str, Any] = {}
    for column in _columns(type(row)):  # type: ignore[arg-type]
        value = getattr(row, column.attribute)
        if value is None:
            if column.default is not None:
                value = column.default()
                setattr(row, column.attribute, value)  # as the ORM would have set it
            elif column.server_default:
                continue  # the database's default applies
        values[column.name] = value
    rows = await _insert(table, tuple(values)).rows(session, values)
    if "id" in table.c:
        row.id = rows[0][0]  # type: ignore[attr-defined]
    return row
