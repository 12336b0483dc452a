"""Third-party loggers kept from writing customer data, or tokens, above DEBUG.

The libraries carebot is built on log what they see, and some of it is personal data or a
secret (checked against slack-bolt 1.30, slack_sdk 3.48, python-telegram-bot 22.8, httpx 0.28,
aiohttp 3.14):

* slack-bolt logs the whole body of every request with a bad signature at INFO (an agent's
  reply, a customer's words on a card), a body no middleware answered at WARNING, and, over
  Socket Mode, the response to an envelope it could not handle at INFO;
* python-telegram-bot logs the updates it could not parse at CRITICAL, an ``Update`` (text,
  phone number, name) it could not build a context for at CRITICAL, and a server answer that
  is not JSON at ERROR; its ``InvalidToken`` error quotes the bot token;
* httpx logs every request's URL at INFO, and a Telegram URL holds the bot token;
* aiohttp's access log writes the query string (Meta's ``hub.verify_token``) and the path (the
  signed links agents open to see a customer's file) of every request at INFO, and
  ``aiohttp.server`` logs a malformed request at ERROR with the bytes that broke it.

:func:`protect` puts one filter on those loggers: a record that carries a request or response
body, a platform object, raw payload data or the bytes of a malformed request is demoted to
DEBUG (and dropped while its logger does not log DEBUG); tokens are masked at every level;
the access log keeps each line with the query values and long opaque path segments masked.
It is applied when the command line sets up logging, and again by the parts that use these
libraries (the web app, the Slack desk), so it holds when carebot is used as a library too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

LIBRARIES = ("slack_bolt", "slack_sdk", "telegram", "httpx", "aiohttp.access", "aiohttp.server")
# Created by the libraries when they are imported or their clients built: guarded beforehand.
KNOWN = (
    "slack_bolt.AsyncApp",
    "slack_bolt.App",
    "slack_bolt.AsyncRequestVerification",
    "slack_bolt.RequestVerification",
    "slack_sdk.socket_mode.aiohttp",
    "slack_sdk.socket_mode.async_client",
    "slack_sdk.web.async_base_client",
    "telegram",
    "telegram.Bot",
    "telegram.ext",
    "telegram.ext.Application",
    "telegram.ext.ExtBot",
    "telegram.ext.Updater",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "httpx",
    "aiohttp.access",
    "aiohttp.server",
)
ACCESS_LOG = "aiohttp.access"
# What a library's message says when it quotes a body or a payload.
QUOTES_DATA = re.compile(r"\bbody\b|for the request \(|received data|json data", re.IGNORECASE)
TOKENS = [
    (re.compile(r"(?<!\d)(\d{5,16}):[A-Za-z0-9_-]{30,}"), r"\1:<token>"),  # Telegram bot tokens
    (re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+"), r"\1-<token>"),  # Slack tokens
    (re.compile(r"\bEAA[A-Za-z0-9]{20,}"), "EAA<token>"),  # Meta access tokens
]
QUERY = re.compile(r"\?[^\s\"']*")
OPAQUE_SEGMENT = re.compile(r"/[A-Za-z0-9_.~=-]{32,}")


class LibraryLogGuard(logging.Filter):
    """Demotes a library's records that carry customer data to DEBUG and masks tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask(record)
        if record.levelno <= logging.DEBUG or not _carries_data(record):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


GUARD = LibraryLogGuard()


def protect(*handed_to_libraries: logging.Logger) -> None:
    """Guard the libraries' loggers (and ``handed_to_libraries``: loggers of ours a library
    logs through, like the one the Slack desk gives slack-bolt). Safe to call again: each run
    also guards library loggers created since."""
    names = set(KNOWN) | {
        name
        for name in list(logging.root.manager.loggerDict)
        if any(name == lib or name.startswith(f"{lib}.") for lib in LIBRARIES)
    }
    for logger in [*(logging.getLogger(name) for name in names), *handed_to_libraries]:
        if GUARD not in logger.filters:
            logger.addFilter(GUARD)


def _carries_data(record: logging.LogRecord) -> bool:
    if record.name == ACCESS_LOG:
        return False  # kept, masked (see _mask)
    if isinstance(record.msg, str) and QUOTES_DATA.search(record.msg):
        return True
    given = record.args or ()
    args = given.values() if isinstance(given, Mapping) else given  # "%(name)s" arguments
    if _is_payload(record.msg) or any(_is_payload(arg) for arg in args):
        return True
    error = record.exc_info[1] if record.exc_info else None
    return error is not None and _quotes_a_request(error)


def _is_payload(value: Any) -> bool:
    """Raw data (a dict, a list, bytes) or a platform object (a Telegram ``Update``...)."""
    if isinstance(value, Mapping | list | tuple | bytes | bytearray):
        return True
    module = type(value).__module__
    return module == "telegram" or module.startswith("telegram.")


def _quotes_a_request(error: BaseException) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError  # imported with the web app

    return isinstance(error, HttpProcessingError)  # its message holds the offending bytes


def _mask(record: logging.LogRecord) -> None:
    try:
        text = record.getMessage()
    except (TypeError, ValueError):
        return  # a message and arguments that do not fit: logging reports that itself
    masked = _mask_url(text) if record.name == ACCESS_LOG else text
    for pattern, replacement in TOKENS:
        masked = pattern.sub(replacement, masked)
    if masked != text:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        trace = logging.Formatter().formatException(record.exc_info)
        masked_trace = trace
        for pattern, replacement in TOKENS:
            masked_trace = pattern.sub(replacement, masked_trace)
        if masked_trace != trace:
            record.exc_text = masked_trace  # what formatters print instead of the traceback


def _mask_url(line: str) -> str:
    """Query values and long opaque path segments (signed links) masked: ``?a=…&b=…``."""

    def query(found: re.Match[str]) -> str:
        pairs = found.group(0)[1:].split("&")
        return "?" + "&".join(f"{pair.partition('=')[0]}=…" for pair in pairs)

    return OPAQUE_SEGMENT.sub("/…", QUERY.sub(query, line))
