"""The generic webhook's inbound event as a typed model (the format is documented in
:mod:`carebot.adapters.webhook`).

``id``, ``user.id`` and a non-blank ``text`` are required; ``user``'s ``name``, ``phone`` and
``email`` and ``sent_at`` are optional. A body without what is required, or with a field of the
wrong type, raises :class:`pydantic.ValidationError`; unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from carebot.adapters.payloads import Id, Payload, RawPayload, TextOrNumber, UtcTime, loads

Words = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class WebhookUser(Payload):
    """Who wrote: their id on the sending platform, and what links them to other channels."""

    id: Id
    name: TextOrNumber | None = None
    phone: TextOrNumber | None = None
    email: TextOrNumber | None = None

    def profile(self) -> dict[str, str]:
        """The fields given (and not empty), by name."""
        given = {"name": self.name, "phone": self.phone, "email": self.email}
        return {key: value for key, value in given.items() if value}


class WebhookEvent(RawPayload):
    id: Id  # unique per event: a resend is answered once
    user: WebhookUser
    text: Words  # surrounding whitespace is dropped
    sent_at: UtcTime | None = None


def parse(raw: bytes) -> WebhookEvent:
    """The event in a request's body; raises ValidationError when it is not one."""
    return WebhookEvent.model_validate(loads(raw))
