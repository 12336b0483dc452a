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

from sqlalchemy import (
    ColumnElement,
    Executable,
    Result,
    Table,
    bindparam,
    insert,
    inspect,
    literal,
    null,
    select,
    true,
)
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
    table, values = _values(row)
    rows = await _insert(table, tuple(values)).rows(session, values)
    if "id" in table.c:
        row.id = rows[0][0]  # type: ignore[attr-defined]
    return row


async def insert_pair(
    session: AsyncSession, first: Any, second: Any, *, link: str | None = None
) -> None:
    """Write two new rows as :func:`insert_row` does, ``first`` then ``second``; with ``link``,
    that attribute of ``second`` (a foreign key) gets ``first``'s new id. On PostgreSQL both
    INSERTs are one statement (the first a WITH of the second): one round trip, not two."""
    if session.get_bind().dialect.name != "postgresql":
        await insert_row(session, first)
        if link is not None:
            setattr(second, link, first.id)
        await insert_row(session, second)
        return
    if link is not None:
        setattr(second, link, 0)  # written by the statement itself: not a parameter
    (table_a, values_a), (table_b, values_b) = _values(first), _values(second)
    linked = None if link is None else _column_name(type(second), link)
    if linked is not None:
        del values_b[linked]
    params = {f"a_{k}": v for k, v in values_a.items()} | {f"b_{k}": v for k, v in values_b.items()}
    statement = _insert_pair(table_a, tuple(values_a), table_b, tuple(values_b), linked)
    ((id_a, id_b),) = await statement.rows(session, params)
    for row, table, new_id in ((first, table_a, id_a), (second, table_b, id_b)):
        if "id" in table.c:
            row.id = new_id
    if link is not None:
        setattr(second, link, first.id)


def _values(row: Any) -> tuple[Table, dict[str, Any]]:
    """``row``'s table, and the values its INSERT writes (Python defaults computed and set on
    the row, as the ORM would have set them)."""
    table = inspect(type(row)).local_table
    assert isinstance(table, Table)
    values: dict[str, Any] = {}
    for column in _columns(type(row)):  # type: ignore[arg-type]
        value = getattr(row, column.attribute)
        if value is None:
            if column.default is not None:
                value = column.default()
                setattr(row, column.attribute, value)
            elif column.server_default:
                continue  # the database's default applies
        values[column.name] = value
    return table, values


def row_values(row: Any) -> dict[str, Any]:
    """The values an INSERT of ``row`` (a new, transient mapped object) writes, by column name,
    its Python defaults computed and set on it; no ``id`` where the table numbers rows."""
    return _values(row)[1]


def _column_name(cls: type, attribute: str) -> str:
    return next(c.name for c in _columns(cls) if c.attribute == attribute)


@cache
def _insert_pair(
    table_a: Table,
    columns_a: tuple[str, ...],
    table_b: Table,
    columns_b: tuple[str, ...],
    linked: str | None,
) -> Prepared:
    """``WITH a AS (INSERT ...), b AS (INSERT ...) SELECT a's id, b's id`` (PostgreSQL); b's
    ``linked`` column is a's new id."""

    def new_id(table: Table) -> ColumnElement[Any]:
        return table.c.id if "id" in table.c else null()

    a = (
        insert(table_a)
        .values({c: bindparam(f"a_{c}", type_=table_a.c[c].type) for c in columns_a})
        .returning(new_id(table_a).label("id"))
        .cte("a")
    )
    names = [*columns_b, *([linked] if linked is not None else [])]
    values = [bindparam(f"b_{c}", type_=table_b.c[c].type) for c in columns_b]
    source = select(*values, *([a.c.id] if linked is not None else []))
    b = insert(table_b).from_select(names, source).returning(new_id(table_b).label("id")).cte("b")
    return Prepared(select(a.c.id, b.c.id).select_from(a.join(b, true())))
