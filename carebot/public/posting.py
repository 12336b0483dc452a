"""What goes out in public, and how it is marked: the bot's tag, the agent's signature, and the
personal-data guard that every public text passes first, the bot's and the agents' alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carebot.config import PublicSettings
from carebot.exceptions import PublicRefused
from carebot.nlu.personal_data import DEFAULT_ORDER_PATTERNS
from carebot.public.guard import check_public_text

Guard = Callable[[str], str | None]  # why a text may not be posted in public (None: it may)


def refuse_all(text: str) -> str | None:
    """The guard when none is configured: when unsure, refuse."""
    return "no personal-data guard is configured for public posts"


OWN_DETAIL = "our contact page"  # what the guard reads in place of the brand's own details


def public_guard(settings: PublicSettings) -> Guard:
    """The personal-data guard (:mod:`carebot.public.guard`) with the brand's order patterns,
    letting through the brand's own contact details exactly as configured: the refusal's
    message for the agent, or None when the text may be posted."""
    patterns = settings.order_patterns or DEFAULT_ORDER_PATTERNS
    own = sorted(settings.own_contact_details, key=len, reverse=True)

    def guard(text: str) -> str | None:
        for detail in own:  # the brand's own address or hotline is not a customer's data
            text = text.replace(detail, OWN_DETAIL)
        refusal = check_public_text(text, order_patterns=patterns)
        return refusal.message if refusal is not None else None

    return guard


@dataclass(frozen=True)
class PublicPosting:
    settings: PublicSettings
    guard: Guard

    def checked(self, text: str) -> str:
        """``text`` when it may be posted in public; raises :class:`PublicRefused` otherwise."""
        found = self.guard(text)
        if found is not None:
            raise PublicRefused(found)
        return text

    def by_agent(self, text: str, agent: str) -> str:
        """An agent's public reply, guarded, then signed as the brand configured."""
        return self.settings.signed(self.checked(text.strip()), agent)
