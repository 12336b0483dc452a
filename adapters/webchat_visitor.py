"""What the web chat knows of one visitor's tab: the page it shows, the browser, the details the
visitor gave, and whether the pre-chat form (``[webchat] prechat``) has been filled in.

Agents see the page and the browser in the customer's profile (``page_url``, ``page_title``,
``browser``): they go with every message, and a page change is kept at once for a visitor the
store knows already (one who wrote or left details); a visitor who only looks around leaves
nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from carebot.config import PrechatMode

PAGE_URL_MAX_CHARS = 500
PAGE_TITLE_MAX_CHARS = 200
# An e-mail address as the store links customers by it (carebot.store.customers.normalise).
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SPACES = re.compile(r"\s+")


def page_url(value: object) -> str | None:
    """A web page's address without its fragment, its query dropped if it is too long; None
    for anything but an http(s) address."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    url = urlunsplit(parts._replace(fragment=""))
    if len(url) > PAGE_URL_MAX_CHARS:
        url = urlunsplit(parts._replace(query="", fragment=""))
    return url[:PAGE_URL_MAX_CHARS]


LANGUAGES_MAX, LANGUAGE_MAX_CHARS = 8, 35  # navigator.languages: a few short IETF tags


def browser_languages(value: object) -> tuple[str, ...]:
    """The languages the widget says its site and the visitor's browser name, preferred first
    (``["de-AT", "de", "en"]``); anything else in the list is left out."""
    if not isinstance(value, list):
        return ()
    tags = [tag.strip() for tag in value[:LANGUAGES_MAX] if isinstance(tag, str)]
    return tuple(tag for tag in tags if tag and len(tag) <= LANGUAGE_MAX_CHARS)


def page_title(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return _SPACES.sub(" ", value).strip()[:PAGE_TITLE_MAX_CHARS]


@dataclass
class Tab:
    """One open socket of a visitor."""

    browser: str = ""
    page_url: str = ""
    page_title: str = ""
    prechat: PrechatMode = "off"
    prechat_done: bool = False
    # the widget's language, when there are texts in it ([webchat.texts] or a table); None: the
    # default's
    language: str | None = None
    # the languages the site and the visitor's browser name, preferred first (a hint for the bot)
    languages: tuple[str, ...] = ()
    # The store has the visitor (they wrote, or left details): page changes are kept at once.
    known: bool = False
    details: dict[str, str] = field(default_factory=dict)  # name, phone, email given here

    def see_page(self, page: object) -> bool:
        """Take ``{"url", "title"}`` from the widget; whether the page changed. An address
        that is not a web page's (a file:// test page) changes nothing."""
        if not isinstance(page, Mapping):
            return False
        url = page_url(page.get("url"))
        if url is None:
            return False
        title = page_title(page.get("title"))
        changed = (url, title) != (self.page_url, self.page_title)
        self.page_url, self.page_title = url, title
        return changed

    def profile(self) -> dict[str, str]:
        """The page and browser, as the identity's profile keeps them (with the page, its
        title even when empty: a page without one must not show the last page's)."""
        found = {"browser": self.browser}
        if self.page_url:
            found |= {"page_url": self.page_url, "page_title": self.page_title}
        return {key: value for key, value in found.items() if value or key == "page_title"}

    def filled(self, fields: tuple[str, ...]) -> bool:
        """Whether the details given here hold every one of ``fields`` (an e-mail address
        that can link the visitor to other channels)."""
        return all(
            self.details.get(key) and (key != "email" or EMAIL.match(self.details[key]))
            for key in fields
        )
