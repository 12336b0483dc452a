"""Text as the database can keep it.

PostgreSQL refuses a NUL character in text and in JSON ("invalid byte sequence for encoding
UTF8: 0x00"), and neither PostgreSQL nor SQLite takes a lone surrogate (half of a UTF-16 pair:
JSON's ``\\ud800`` escape gives one, UTF-8 cannot encode it). Platforms never send either in a
message, but a body that carries one is still signed and still someone's words: refusing it
would lose the message (and, in a platform's batch, the good messages beside it), and storing
it would fail the whole call. So what a door takes in goes through :func:`text` (a string),
:func:`value` (JSON data: keys and strings, at any depth) or :func:`event` (a channel event,
every string in it) first: a NUL is dropped and a lone surrogate becomes U+FFFD, the
replacement character, as any UTF-8 decoder shows a broken character.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any, TypeVar

from carebot.models import ChannelEvent

E = TypeVar("E", bound=ChannelEvent)
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(words: str) -> str:
    """``words`` without NUL characters, lone surrogates replaced by U+FFFD."""
    if "\x00" in words:
        words = words.replace("\x00", "")
    if not words.isascii():
        words = _SURROGATE.sub("\ufffd", words)
    return words


def value(data: Any) -> Any:
    """JSON-like ``data`` with every string (dict keys too) made storable."""
    if isinstance(data, str):
        return text(data)
    if isinstance(data, dict):
        return {value(key): value(item) for key, item in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(value(item) for item in data)
    return data


def event(found: E) -> E:
    """A channel event with every string in it made storable (ids, text, profile, the raw
    payload, attachments, the public context)."""
    return _dataclass(found)


def _dataclass(instance: Any) -> Any:
    changes = {}
    for field in dataclasses.fields(instance):
        old = getattr(instance, field.name)
        new = _any(old)
        if new is not old:
            changes[field.name] = new
    return dataclasses.replace(instance, **changes) if changes else instance


def _any(data: Any) -> Any:
    if isinstance(data, Enum):
        return data
    if isinstance(data, str):
        cleaned = text(data)
        return data if cleaned == data else cleaned
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return _dataclass(data)
    if isinstance(data, tuple) and data and dataclasses.is_dataclass(data[0]):
        cleaned_items = tuple(_any(item) for item in data)
        return (
            data if all(a is b for a, b in zip(cleaned_items, data, strict=True)) else cleaned_items
        )
    if isinstance(data, dict | list | tuple):
        cleaned_data = value(data)
        return data if cleaned_data == data else cleaned_data
    return data
