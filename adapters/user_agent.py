"""A browser's User-Agent header in a few words for agents: "Chrome 131 on Windows".

Deliberately small: the browsers and systems customers use, by the tokens their User-Agent
strings have carried for years. Order matters: Edge, Opera and Samsung Internet also say
"Chrome" and "Safari"; Chrome also says "Safari"; every browser on iOS is a Safari underneath
(CriOS is Chrome, FxiOS Firefox). A header it cannot read gives its first product token (e.g.
"curl/8.5.0"), an empty one nothing.
"""

from __future__ import annotations

import re

MAX_CHARS = 60
# (name, pattern whose first group is the version), first match wins.
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("Edge", r"\bEdg(?:e|A|iOS)?/(\d+)"),
        ("Opera", r"\b(?:OPR|OPiOS)/(\d+)"),
        ("Samsung Internet", r"\bSamsungBrowser/(\d+)"),
        ("Headless Chrome", r"\bHeadlessChrome/(\d+)"),  # automation (tests, crawlers)
        ("Firefox", r"\b(?:Firefox|FxiOS)/(\d+)"),
        ("Chrome", r"\b(?:Chrome|CriOS)/(\d+)"),
        ("Safari", r"\bVersion/(\d+)(?:\.\d+)*(?: Mobile/\S+)? Safari/"),
        ("Internet Explorer", r"\bMSIE (\d+)"),
        ("Internet Explorer", r"\bTrident/.*\brv:(\d+)"),
    )
)
_WINDOWS = {"10.0": "Windows", "6.3": "Windows 8.1", "6.2": "Windows 8", "6.1": "Windows 7"}


def browser_label(user_agent: str | None) -> str:
    """A few words for agents, e.g. "Chrome 131 on Windows"; "" for no header."""
    header = (user_agent or "").strip()
    if not header:
        return ""
    browser = _browser(header)
    system = _system(header)
    if browser and system:
        label = f"{browser} on {system}"
    elif browser or system:
        label = browser or f"a browser on {system}"
    else:
        label = header.split()[0]
    return label[:MAX_CHARS]


def _browser(header: str) -> str:
    for name, pattern in _BROWSERS:
        found = pattern.search(header)
        if found:
            return f"{name} {found.group(1)}"
    return ""


def _system(header: str) -> str:
    if found := re.search(r"\bWindows NT (\d+\.\d+)", header):
        return _WINDOWS.get(found.group(1), "Windows")
    if found := re.search(r"\b(iPhone|iPad|iPod)\b.*? OS (\d+)_", header):
        return ("iPadOS " if found.group(1) == "iPad" else "iOS ") + found.group(2)
    if found := re.search(r"\bAndroid (\d+)", header):
        return f"Android {found.group(1)}"
    if "Android" in header:
        return "Android"
    if "CrOS" in header:
        return "ChromeOS"
    if "Macintosh" in header or "Mac OS X" in header:
        return "macOS"
    if "Linux" in header or "X11" in header:
        return "Linux"
    return ""
