"""What every typed model of an inbound platform payload shares.

Adapters parse what a platform POSTs into pydantic models before translating it, so a field
the translation needs is either there, with the right type, or the whole call is refused with
400: nothing is defaulted to ``""`` and stored. Fields the platforms add later are ignored.

:func:`problems` says what is wrong without quoting the payload: a validation error's own text
holds the input (customer text, phone numbers), which is logged at DEBUG only.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # the escapes of \\ud800 to \\udfff
MAX_DEPTH = 64  # levels of nesting a body may have (the platforms' have fewer than 15)
MAX_ID = 200  # characters of a user's or a message's id (what the database keeps)
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


class Payload(BaseModel):
    """A part of a platform's payload: immutable; unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class RawPayload(Payload):
    """A payload part that also keeps the JSON object it was parsed from, unknown fields
    included (adapters hand it on as ``InboundMessage.raw``)."""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: Any) -> Any:
        parsed = handler(data)
        if isinstance(data, dict):
            parsed._raw = data
        return parsed

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object as the platform sent it."""
        return self._raw


def _number_as_text(value: Any) -> Any:
    """Platforms send ids as strings, some as numbers; a bool is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _whole_number(value: Any) -> Any:
    """A count of seconds (or milliseconds): a JSON integer or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number (or a string of digits)")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number (or a string of digits)")
    return int(value)


def _utc(value: datetime) -> datetime:
    """A time without a UTC offset is taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Id = Annotated[
    str,
    BeforeValidator(_number_as_text),
    StringConstraints(min_length=1, max_length=MAX_ID, pattern=r"\S"),
]
"""An id: a non-blank string (or a number) of at most :data:`MAX_ID` characters."""

TextOrNumber = Annotated[str, BeforeValidator(_number_as_text)]
"""A string; a number is taken as its digits (a phone number sent as a number)."""

Seconds = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=LAST_SECOND)]
"""A Unix time in seconds (WhatsApp sends it as a string of digits)."""

Millis = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=LAST_SECOND * 1000)]
"""A Unix time in milliseconds (Messenger, Instagram)."""

UtcTime = Annotated[datetime, AfterValidator(_utc)]
"""An ISO 8601 time; one without an offset is taken as UTC."""


def loads(raw: bytes) -> Any:
    """The JSON value in a request's body. A lone surrogate (half of a UTF-16 pair, as a
    platform leaves when it cuts a text inside an emoji) becomes U+FFFD, the replacement
    character, where pydantic would refuse the whole body, and with it the good messages of a
    batch. Raises ValidationError (``Invalid JSON: ...``) when the body is not JSON, or is
    nested too deeply."""
    try:
        data = json.loads(raw)
        if too_deep(data):
            raise RecursionError
        if _SURROGATE_ESCAPE.search(raw):  # (a pair's two escapes are joined by json itself)
            data = _whole(data)
    except (ValueError, RecursionError) as exc:
        error = f"nested too deeply (more than {MAX_DEPTH} levels)"
        if not isinstance(exc, RecursionError):
            error = str(exc)
        raise ValidationError.from_exception_data(
            "JSON", [{"type": "json_invalid", "loc": (), "input": "", "ctx": {"error": error}}]
        ) from None
    return data


def too_deep(data: Any, levels: int = MAX_DEPTH) -> bool:
    """Whether JSON ``data`` nests deeper than ``levels`` (walked without recursion: what is
    kept of a body, its text made storable, is walked by recursion afterwards)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > levels:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _whole(data: Any) -> Any:
    """``data`` with each lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(data, str):
        return _SURROGATE.sub("\ufffd", data)
    if isinstance(data, dict):
        return {_whole(key): _whole(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_whole(item) for item in data]
    return data


def at_second(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def at_milli(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def problems(exc: ValidationError) -> str:
    """What is wrong, field by field (``entry.0.messaging.0.sender: Field required``), without
    the values: those may be a customer's words."""
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"])
        found.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(found)
