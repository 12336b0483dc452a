"""The forms the inbox's and the console's pages post, read with a clear 400 for what those
pages never send.

:class:`Form` is the posted form as a mapping of its text fields: a field sent twice (every
page sends each once) is refused rather than one copy picked at random, a file where text is
expected too; :meth:`Form.number` reads a record's number (a message, a proposal) and refuses
one the database cannot hold; every value is made storable (:mod:`carebot.store.storable`: no
NUL, no lone surrogate). :func:`readable_addresses` does the same for addresses: a number
past the largest id in a path (``/inbox/c/{id}``) names nothing, and is answered 404; a query
value with a NUL or a lone surrogate gets 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping

from aiohttp import web
from multidict import MultiMapping

from carebot.store import storable
from carebot.store.tables import LARGEST_ID

RELOAD = "reload the page and try again"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Form(Mapping[str, str]):
    """A posted form's text fields, each sent once."""

    def __init__(self, fields: MultiMapping[object]) -> None:
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        values = self._fields.getall(name, [])
        if not values:
            raise KeyError(name)
        if len(values) > 1:
            raise web.HTTPBadRequest(
                text=f"The field {name!r} was sent {len(values)} times; the page sends it once: "
                + RELOAD
            )
        found = values[0]
        if not isinstance(found, str):
            raise web.HTTPBadRequest(text=f"The field {name!r} must be text, not a file: {RELOAD}")
        return storable.text(found)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self._fields))

    def __len__(self) -> int:
        return len(dict.fromkeys(self._fields))

    def number(self, name: str, what: str = "message") -> int:
        """The field ``name`` as a record's number (1 to :data:`LARGEST_ID`); 400 otherwise."""
        return number(self.get(name, ""), what, name)


def number(value: str, what: str, name: str = "") -> int:
    """``value`` as a record's number (1 to :data:`LARGEST_ID`); 400 naming ``name`` (the
    field) and ``what`` the number is of otherwise."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= LARGEST_ID:
        raise web.HTTPBadRequest(
            text=f"{name or what} must be a {what} number, not {value!r} (they go from 1 to "
            f"{LARGEST_ID}): {RELOAD}"
        )
    return int(value)


async def posted(request: web.Request) -> Form:
    """The request's form (urlencoded or multipart); 400 when the body is not one."""
    try:
        return Form(await request.post())
    except ValueError as exc:  # a multipart body without its boundary...
        raise web.HTTPBadRequest(text=f"The body is not a form ({exc}): {RELOAD}") from exc


@web.middleware
async def readable_addresses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A number in the path (a conversation, a revision, a proposal) past the largest id names
    nothing: 404 with what the numbers go up to, instead of a query that fails. A query value
    with a NUL byte or a broken character (half of a UTF-16 pair), which no page of ours
    makes, gets 400 (PostgreSQL refuses to compare text with a NUL)."""
    found = request.match_info.get("id", "")
    if found.isascii() and found.isdigit() and int(found) > LARGEST_ID:
        raise web.HTTPNotFound(text=f"There is no {found}: numbers go up to {LARGEST_ID}.")
    for name, value in request.query.items():
        if storable.text(value) != value:
            raise web.HTTPBadRequest(
                text=f"The address's {name!r} holds a NUL or a broken character: {RELOAD}"
            )
    return await handler(request)
